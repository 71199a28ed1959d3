"""What a part looks like to the daemon.

A part is an object with a ``name`` and an async ``run()`` that works until cancelled. The
daemon supervises it: if ``run()`` raises, the error is logged and the part is started again
after a pause that grows with repeated failures. Later parts (logs, sockets, scan) plug in by
being listed in :func:`stockade.daemon.runner.build_parts`.
"""

from __future__ import annotations

from typing import Protocol


class Part(Protocol):
    name: str

    async def run(self) -> None:
        """Work until cancelled; raising means 'restart me'."""
        ...
