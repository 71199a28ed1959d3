"""The approved way to start a background task: keep a reference and log its failure.

A bare ``asyncio.create_task`` may be garbage-collected while running and loses exceptions;
the lint configuration bans it in favour of :func:`spawn`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_running: set[asyncio.Task[Any]] = set()
log = logging.getLogger("stockade")


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    loop = asyncio.get_running_loop()
    task = loop.create_task(coro, name=name)
    _running.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _running.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("task %s failed: %s", name, t.exception(), exc_info=t.exception())

    task.add_done_callback(done)
    return task
