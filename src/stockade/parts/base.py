"""What a part looks like to the daemon.

A part is an object with a ``name`` and an async ``run()`` that works until cancelled. The
daemon supervises it: if ``run()`` raises, the error is logged and the part is started again
after a pause that grows with repeated failures. Later parts (logs, sockets, scan) plug in by
being listed in :func:`stockade.daemon.runner.build_parts`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from stockade.errors import IntegrityError
from stockade.store.base import Store

T = TypeVar("T")


class Part(Protocol):
    name: str

    async def run(self) -> None:
        """Work until cancelled; raising means 'restart me'."""
        ...


class WorkerThread:
    """The one thread on which a part does its blocking work (files, the store, responders),
    in order, so the event loop never waits on it."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self, last: Callable[[], None]) -> None:
        """Run ``last`` (closing files and connections) on the thread, then let it go."""
        try:
            await self.call(last)
        finally:
            self._executor.shutdown(wait=False)


class BaselineGuard:
    """Keeps a part from checking against a baseline that failed its signature check: the
    failure is logged (the service has stored the critical alert) and that baseline version is
    left alone until it is replaced — accepted again, or restored."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._failed: dict[str, int] = {}

    def run(self, store: Store, part: str, check: Callable[[], T]) -> T | None:
        """``check()``, or None when the baseline of ``part`` failed (now or before)."""
        v = store.baseline_version(part)
        if v is not None and self._failed.get(part) == v.version:
            return None
        try:
            return check()
        except IntegrityError as e:
            if v is not None:
                self._failed[part] = v.version
            self._log.critical("%s; no check against it until it is accepted again", e)
            return None
