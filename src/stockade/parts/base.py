"""What a part looks like to the daemon.

A part is an object with a ``name`` and an async ``run()`` that works until cancelled. The
daemon supervises it: if ``run()`` raises, the error is logged and the part is started again
after a pause that grows with repeated failures. Later parts (logs, sockets, scan) plug in by
being listed in :func:`stockade.daemon.runner.build_parts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

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
