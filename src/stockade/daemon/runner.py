"""``stockade run``: start the enabled parts on one event loop and keep them running.

SIGTERM and SIGINT stop every part and exit 0. SIGHUP reads the configuration again: if it
is valid, the parts restart with it; if not, the error is logged and the old one stays.
A stop that has not finished after ``STOP_GRACE`` seconds writes every thread's stack to
standard error and ends the process with status 1, so that a stuck part is both visible and
cannot keep the process (and the service manager) waiting.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
from collections.abc import Callable

from stockade.context import Context
from stockade.daemon.supervisor import supervise
from stockade.daemon.tasks import spawn
from stockade.errors import StockadeError
from stockade.parts.base import Part

log = logging.getLogger("stockade")

#: seconds a stop may take before the stacks are dumped and the process ends
STOP_GRACE = 20.0


def build_parts(ctx: Context) -> list[Part]:
    """The parts the configuration enables; later parts are added here."""
    parts: list[Part] = []
    if ctx.config.notify.enabled and ctx.config.notify.channels:
        # first, so that its cursor is in place before the other parts raise alerts
        from stockade.parts.notify.daemon import NotifyPart

        parts.append(NotifyPart(ctx))
    if ctx.config.files.enabled:
        from stockade.parts.files.daemon import FilesPart

        parts.append(FilesPart(ctx))
    if ctx.config.logs.enabled:
        from stockade.parts.logs.daemon import LogsPart

        parts.append(LogsPart(ctx))
    if ctx.config.sockets.enabled:
        from stockade.parts.sockets.daemon import SocketsPart

        parts.append(SocketsPart(ctx))
    if ctx.config.scan.enabled and ctx.config.scan.groups:
        from stockade.parts.scan.daemon import ScanPart

        parts.append(ScanPart(ctx))
    if ctx.config.web.enabled:
        from stockade.parts.web.daemon import WebPart

        parts.append(WebPart(ctx))
    return parts


class Daemon:
    def __init__(self, ctx: Context, reload: Callable[[], Context]) -> None:
        self.ctx = ctx
        self._reload_fn = reload
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._hup = asyncio.Event()

    def _start_parts(self) -> None:
        parts = build_parts(self.ctx)
        if not parts:
            log.warning("no part is enabled in the configuration: nothing to do but wait")
        for part in parts:
            log.info("starting part %s", part.name)
            self._tasks.append(spawn(supervise(part), name=f"part-{part.name}"))

    async def _stop_parts(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._hup.set)
        self._start_parts()
        log.info(
            "stockade is running (pid %d); SIGHUP reloads the configuration, SIGTERM stops",
            __import__("os").getpid(),
        )
        try:
            while not self._stop.is_set():
                stop = spawn(self._stop.wait(), name="wait-stop")
                hup = spawn(self._hup.wait(), name="wait-hup")
                await asyncio.wait({stop, hup}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                hup.cancel()
                if self._hup.is_set() and not self._stop.is_set():
                    self._hup.clear()
                    await self._reload()
        finally:
            log.info("stopping")
            faulthandler.dump_traceback_later(STOP_GRACE, exit=True)
            await self._stop_parts()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    async def _reload(self) -> None:
        log.info("SIGHUP: reading the configuration again")
        try:
            new = self._reload_fn()
            from stockade.sensors.files.policy import Policy

            Policy.from_config(new.config.files)
        except StockadeError as e:
            log.error("the new configuration is not valid, keeping the old one: %s", e)
            return
        await self._stop_parts()
        self.ctx = new
        log.info("configuration reloaded from %s", new.loaded.source)
        self._start_parts()
