"""Counting failures per address and deciding bans: maxretry failures within findtime.

The window slides: an address is banned when its last ``maxretry`` failures all lie within
``findtime`` seconds (fail2ban resets a fixed window instead, which can miss a steady attacker).
After a ban its count starts again. At most ``maxmatches`` matched lines are kept per address
as evidence. Pure: times come in with the failures.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Count:
    times: deque[float] = field(default_factory=deque)
    matches: deque[str] = field(default_factory=deque)
    last: float = 0.0


@dataclass(frozen=True)
class Decision:
    """An address reached maxretry: ban it."""

    address: str
    failures: int
    first: float
    last: float
    matches: tuple[str, ...]


class FailureCounter:
    """Failure counts of one jail."""

    def __init__(self, maxretry: int, findtime: float, maxmatches: int | None = None) -> None:
        self.maxretry = max(1, maxretry)
        self.findtime = findtime
        self.maxmatches = maxmatches if maxmatches is not None else self.maxretry
        self._counts: dict[str, _Count] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, address: str, when: float, matches: list[str] | None = None) -> Decision | None:
        """Count one failure; a Decision when the address must be banned now."""
        c = self._counts.get(address)
        if c is None:
            c = self._counts[address] = _Count()
        c.times.append(when)
        c.last = max(c.last, when)
        while c.times and c.times[0] < c.last - self.findtime:
            c.times.popleft()
        for line in matches or ():
            c.matches.append(line)
            if len(c.matches) > self.maxmatches:
                c.matches.popleft()
        if len(c.times) < self.maxretry:
            return None
        decision = Decision(address, len(c.times), c.times[0], c.last, tuple(c.matches))
        del self._counts[address]
        return decision

    def snapshot(self) -> dict[str, list[list[float] | list[str]]]:
        """The counts, to store: address → [times, matched lines]."""
        return {a: [list(c.times), list(c.matches)] for a, c in self._counts.items()}

    def restore(self, data: dict[str, list[list[float] | list[str]]]) -> None:
        """Counts stored by :meth:`snapshot`; malformed entries are skipped."""
        for address, entry in data.items():
            try:
                times, matches = entry
                c = _Count(deque(float(t) for t in times), deque(str(m) for m in matches))
            except (TypeError, ValueError):
                continue
            if c.times:
                c.last = max(c.times)
                self._counts[address] = c

    def forget(self, address: str) -> None:
        self._counts.pop(address, None)

    def expire(self, now: float) -> int:
        """Drop addresses whose last failure is older than findtime; return how many."""
        old = [a for a, c in self._counts.items() if c.last < now - self.findtime]
        for a in old:
            del self._counts[a]
        return len(old)
