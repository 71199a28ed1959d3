"""The sockets part inside ``stockade run``: the listener check on a schedule.

The first run with no baseline takes the current listeners as the baseline. Each check
compares with the baseline and raises one alert per delta; a delta still present at the next
check is not raised again, one that disappears and comes back is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from stockade.context import Context
from stockade.model import Alert
from stockade.parts.base import WorkerThread
from stockade.parts.sockets.service import SocketsService
from stockade.store.base import Store

log = logging.getLogger("stockade.sockets")


class SocketsPart:
    name = "sockets"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.sockets
        self._store: Store | None = None
        self._svc: SocketsService | None = None
        self._reported: set[tuple[str, str, str]] = set()

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        self._svc = SocketsService(self.ctx, self._store)
        if self._svc.baseline() is None:
            version, n = self._svc.accept(note="first run")
            log.info(
                "sockets: no baseline; took the %d current listeners as version %d", n, version
            )

    def _check(self) -> list[Alert]:
        assert self._svc is not None and self._store is not None
        deltas = self._svc.check().deltas
        self._store.set_state("sockets.last_check", json.dumps({"time": time.time()}))
        keyed = [((d.kind, d.subject, d.new.text() if d.new else ""), d) for d in deltas]
        fresh = [d for k, d in keyed if k not in self._reported]
        self._reported = {k for k, _ in keyed}
        alerts = self._svc.alerts(fresh)
        if alerts:
            self._store.add_alerts(alerts)
        return alerts

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def run(self) -> None:
        worker = WorkerThread("sockets")
        try:
            await worker.call(self._open)
            while True:
                alerts = await worker.call(self._check)
                for a in alerts:
                    log.warning(
                        "ALERT %s %s %s: %s", a.severity, a.kind, a.subject, a.detail["message"]
                    )
                await asyncio.sleep(self.cfg.schedule)
        finally:
            await worker.close(self._close)
