"""The sockets part inside ``stockade run``: the listener check on a schedule and on events.

The first run with no baseline takes the current listeners as the baseline. Each check
compares with the baseline and raises one alert per delta; a delta still present at the next
check is not raised again, one that disappears and comes back is.

With ``sockets.events`` the part also checks soon after a program is executed or a socket
without a peer is destroyed (see :mod:`stockade.sensors.sockets.watch`): once ``SOON`` seconds
after the first such event and once more ``LATE`` seconds after the last one (for a program that
takes a while to listen), never two checks closer than ``sockets.event_gap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from stockade.context import Context
from stockade.durations import format_duration
from stockade.model import Alert
from stockade.parts.base import BaselineGuard, WorkerThread
from stockade.parts.sockets.service import PART, SocketsService
from stockade.sensors.sockets.watch import SocketEvents
from stockade.store.base import Store

log = logging.getLogger("stockade.sockets")

SOON = 0.25
LATE = 3.0


class Due:
    """When the next check is due: the schedule, and what events asked for."""

    def __init__(self, schedule: float, gap: float, now: float) -> None:
        self.schedule = schedule
        self.gap = gap
        self.last = now
        self.soon: float | None = None
        self.late: float | None = None

    def event(self, now: float) -> None:
        if self.soon is None:
            self.soon = now + SOON
        self.late = now + LATE

    def next(self) -> float:
        """The time of the next check."""
        at = self.last + self.schedule
        for t in (self.soon, self.late):
            if t is not None:
                at = min(at, max(t, self.last + self.gap))
        return at

    def checked(self, now: float) -> None:
        self.last = now
        self.soon = None
        if self.late is not None and self.late <= now:
            self.late = None


class SocketsPart:
    name = "sockets"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.sockets
        self._store: Store | None = None
        self._svc: SocketsService | None = None
        self._reported: set[tuple[str, str, str]] = set()
        self._guard = BaselineGuard(log)

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        self._svc = SocketsService(self.ctx, self._store)
        svc = self._svc
        if self._guard.run(self._store, PART, lambda: svc.baseline() is not None) is False:
            version, n = self._svc.accept(note="first run")
            log.info(
                "sockets: no baseline; took the %d current listeners as version %d", n, version
            )

    def _check(self) -> list[Alert]:
        assert self._svc is not None and self._store is not None
        svc = self._svc
        deltas = self._guard.run(self._store, PART, lambda: svc.check().deltas)
        if deltas is None:
            return []
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
        loop = asyncio.get_running_loop()
        events: SocketEvents | None = None
        wake = asyncio.Event()
        due = Due(self.cfg.schedule, self.cfg.event_gap, time.monotonic())

        def on_event(fd: int) -> None:
            assert events is not None
            try:
                worth = events.read(fd)
            except OSError as e:
                log.warning("sockets: reading events failed (%s); the schedule goes on", e)
                loop.remove_reader(fd)
                return
            if worth:
                due.event(time.monotonic())
                wake.set()

        try:
            await worker.call(self._open)
            if self.cfg.events:
                events = SocketEvents()
                for fd in events.filenos():
                    loop.add_reader(fd, on_event, fd)
                if events.unavailable:
                    log.info(
                        "sockets: not available: %s; what they would show waits for the "
                        "check every %s",
                        ", ".join(events.unavailable),
                        format_duration(self.cfg.schedule),
                    )
            while True:
                due.checked(time.monotonic())
                alerts = await worker.call(self._check)
                for a in alerts:
                    log.warning(
                        "ALERT %s %s %s: %s", a.severity, a.kind, a.subject, a.detail["message"]
                    )
                while (left := due.next() - time.monotonic()) > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), left)
        finally:
            if events is not None:
                for fd in events.filenos():
                    loop.remove_reader(fd)
                events.close()
            await worker.close(self._close)
