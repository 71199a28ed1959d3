"""The allowlist guard: the one gate between a ban and any responder.

:class:`Guarded` wraps a responder. Its ``apply`` drops every ban whose network the allowlist
covers, logging one warning line for each (with the reason), and passes the rest on in one call.
``remove`` and ``flush`` pass straight through: lifting a ban never needs guarding, and lifting
one that should never have been placed is welcome.

Every responder stockade builds is wrapped with :func:`guard` before anything else sees it, so
no code path reaches a backend without crossing the allowlist; the dry-run responder is wrapped
too, so a dry run reports what a real run would do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stockade.responders.allowlist import Allowlist, show
from stockade.responders.base import Ban, Responder

_LOG = logging.getLogger("stockade.respond")


class Guarded:
    """A responder that no allowlisted address can get past."""

    def __init__(
        self, responder: Responder, allowlist: Allowlist, log: logging.Logger | None = None
    ) -> None:
        self.inner = responder
        self.name = responder.name
        self.allowlist = allowlist
        self.log = log or _LOG

    def screen(self, bans: Sequence[Ban]) -> tuple[list[Ban], list[tuple[Ban, str]]]:
        """Split ``bans`` into those allowed and those refused, each with its reason."""
        allowed: list[Ban] = []
        refused: list[tuple[Ban, str]] = []
        for ban in bans:
            reason = self.allowlist.covers(ban.network)
            if reason is None:
                allowed.append(ban)
            else:
                refused.append((ban, reason))
        return allowed, refused

    def apply(self, bans: Sequence[Ban], *, now: float) -> None:
        """Apply every ban the allowlist does not cover; log each one it refuses."""
        allowed, refused = self.screen(bans)
        for ban, reason in refused:
            self.log.warning(
                "%s: not banning %s for jail %s: %s", self.name, show(ban.network), ban.jail, reason
            )
        if allowed:
            self.inner.apply(allowed, now=now)

    def remove(self, bans: Sequence[Ban]) -> None:
        """Lift the bans (not guarded)."""
        self.inner.remove(bans)

    def flush(self) -> None:
        """Remove everything the wrapped responder put in place (not guarded)."""
        self.inner.flush()


def guard(responder: Responder, allowlist: Allowlist, log: logging.Logger | None = None) -> Guarded:
    """Wrap ``responder`` (a responder already guarded gets the new allowlist, not a 2nd wrap)."""
    if isinstance(responder, Guarded):
        responder = responder.inner
    return Guarded(responder, allowlist, log)
