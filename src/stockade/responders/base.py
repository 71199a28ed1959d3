"""What a responder is: it applies and lifts bans, in batches.

A :class:`Ban` names a network (a single address is a /32 or /128), the jail that asked for it,
when it ends (``None``: never), the ports it covers (``None``: every port) and why. Responders
are synchronous (they run a program such as ``nft``); the daemon calls them off its event loop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Ban:
    """One ban to apply or lift."""

    network: Network
    jail: str
    until: float | None = None  # epoch seconds; None = permanent
    ports: tuple[str, ...] | None = None  # None = every port; else "22", "ssh", "8000-8100"
    protocol: str = "tcp"  # "tcp", "udp" or "all" (only meaningful with ports)
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class ResponderError(Exception):
    """A responder could not do what it was asked (the message says why, in one line)."""


class Responder(Protocol):
    """Applies and lifts bans. Implementations must be safe to call again with the same bans."""

    name: str

    def apply(self, bans: Sequence[Ban], *, now: float) -> None:
        """Put every ban in place, in one atomic step where the backend allows it.

        A ban whose ``until`` is not after ``now`` is skipped.
        """
        ...

    def remove(self, bans: Sequence[Ban]) -> None:
        """Lift the bans (a ban that is not in place is not an error)."""
        ...

    def flush(self) -> None:
        """Remove everything this responder ever put in place (``stockade bans flush``)."""
        ...
