"""The dry-run responder: says what it would do, and does nothing else.

Each call logs one line per ban ("dry run: would ban 203.0.113.7 (jail sshd, tcp ports 22)
for 600 s: 5 failures in 10m") and records an :class:`Action` in :attr:`DryRunResponder.actions`,
so tests and ``--dry-run`` reports can inspect it; :attr:`DryRunResponder.banned` is what would be
in place now. Like every responder, it is wrapped by the allowlist guard, so a dry run shows
exactly the bans a real run would place.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stockade.responders.allowlist import show
from stockade.responders.base import Ban, Network

_LOG = logging.getLogger("stockade.respond")


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the responder would have done."""

    verb: Literal["ban", "unban", "flush"]
    ban: Ban | None  # None for a flush
    at: float  # epoch seconds of the call


def describe(ban: Ban, *, now: float) -> str:
    """A ban in words: ``203.0.113.7 (jail sshd, tcp ports 22) for 600 s: why``."""
    where = "every port" if ban.ports is None else f"{ban.protocol} ports {','.join(ban.ports)}"
    length = "for ever" if ban.until is None else f"for {max(0, math.ceil(ban.until - now))} s"
    reason = f": {ban.reason}" if ban.reason else ""
    return f"{show(ban.network)} (jail {ban.jail}, {where}) {length}{reason}"


class DryRunResponder:
    """Logs and records bans instead of placing them."""

    def __init__(self, log: logging.Logger | None = None, *, name: str = "dry-run") -> None:
        self.name = name
        self.log = log or _LOG
        self.actions: list[Action] = []
        self.banned: dict[tuple[Network, str], Ban] = {}

    def apply(self, bans: Sequence[Ban], *, now: float) -> None:
        """Record and log each ban whose ``until`` is after ``now``."""
        for ban in bans:
            if ban.until is not None and ban.until <= now:
                continue
            self.actions.append(Action("ban", ban, now))
            self.banned[(ban.network, ban.jail)] = ban
            self.log.info("dry run: would ban %s", describe(ban, now=now))

    def remove(self, bans: Sequence[Ban]) -> None:
        """Record and log each unban."""
        now = time.time()
        for ban in bans:
            self.actions.append(Action("unban", ban, now))
            self.banned.pop((ban.network, ban.jail), None)
            self.log.info("dry run: would unban %s (jail %s)", show(ban.network), ban.jail)

    def flush(self) -> None:
        """Record and log a flush."""
        self.actions.append(Action("flush", None, time.time()))
        self.banned.clear()
        self.log.info("dry run: would remove every ban")
