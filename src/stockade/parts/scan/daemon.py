"""The scan part inside ``stockade run``: every scan group on its own schedule.

The first round of a group with no baseline becomes the baseline. Each later round is compared
with the baseline (deltas confirmed by a second look), stored, and each confirmed delta and
each certificate close to expiry is raised once; a delta still there at the next round is not
raised again, one that goes away and comes back is.
"""

from __future__ import annotations

import asyncio
import logging
import time

from stockade.config.schema import ScanGroup
from stockade.context import Context
from stockade.model import Alert
from stockade.parts.base import BaselineGuard, WorkerThread
from stockade.parts.scan.service import ScanService, baseline_part
from stockade.store.base import Store

log = logging.getLogger("stockade.scan")


class ScanPart:
    name = "scan"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.scan
        self._store: Store | None = None
        self._svc: ScanService | None = None
        self._reported: dict[str, set[tuple[object, ...]]] = {}
        self._guard = BaselineGuard(log)

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        self._svc = ScanService(self.ctx, self._store)

    def _round(self, g: ScanGroup) -> list[Alert]:
        assert self._svc is not None and self._store is not None
        svc = self._svc
        out = self._guard.run(self._store, baseline_part(g.name), lambda: svc.check(g))
        if out is None:
            return []
        up = sum(r.state == "up" for r in out.reports)
        if out.version is None:
            version, _ = self._svc.accept(g.name, out.scan_id, note="first run")
            log.info(
                "scan %s: no baseline; took scan %d (%d of %d hosts up) as version %d",
                g.name,
                out.scan_id,
                up,
                len(out.reports),
                version,
            )
            return []
        deltas = out.deltas + self._svc.expiring(g, out.reports)
        keyed = [(x.identity, x) for x in deltas]
        seen = self._reported.get(g.name, set())
        fresh = [x for k, x in keyed if k not in seen]
        self._reported[g.name] = {k for k, _ in keyed}
        log.info(
            "scan %s: scan %d, %d of %d hosts up, %d changes (%d unconfirmed), %.1f s",
            g.name,
            out.scan_id,
            up,
            len(out.reports),
            len(out.deltas),
            out.unconfirmed,
            out.elapsed,
        )
        alerts = self._svc.alerts(g, fresh)
        if alerts:
            self._store.add_alerts(alerts)
        return alerts

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def run(self) -> None:
        worker = WorkerThread("scan")
        due = {g.name: time.monotonic() for g in self.cfg.groups}
        groups = {g.name: g for g in self.cfg.groups}
        try:
            await worker.call(self._open)
            while True:
                name = min(due, key=due.__getitem__)
                await asyncio.sleep(max(0.0, due[name] - time.monotonic()))
                g = groups[name]
                alerts = await worker.call(self._round, g)
                due[name] = time.monotonic() + g.schedule
                for a in alerts:
                    log.warning(
                        "ALERT %s %s %s: %s", a.severity, a.kind, a.subject, a.detail["message"]
                    )
        finally:
            await worker.close(self._close)
