"""Dashboard logins: password hashes (argon2id), session and CSRF tokens, and the limit on
failed logins per address.

Sessions live in the store; the cookie carries a random token and the store only its SHA-256
digest, so a copy of the database does not hand out logged-in sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from stockade.model import WebSession
from stockade.store.base import Store

_hasher = PasswordHasher()
# verified when the user does not exist, so that a wrong name costs as long as a wrong password
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))

USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def valid_user_name(name: str) -> bool:
    return 0 < len(name) <= 64 and set(name) <= USER_CHARS


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a.encode(), b.encode())


def open_session(
    store: Store, user: str, lifetime: float, address: str, now: float | None = None
) -> tuple[str, WebSession]:
    """Store a new session; return the cookie token (only the caller sees it) and the session."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    session = WebSession(
        digest=token_digest(token),
        user=user,
        csrf=secrets.token_urlsafe(32),
        created=now,
        expires=now + lifetime,
        address=address,
    )
    store.delete_web_sessions()  # expired ones go at each login: the table stays small
    store.add_web_session(session)
    return token, session


class FailureLimiter:
    """At most ``limit`` failed logins per address within ``window`` seconds: a sliding window
    of failure times per address, in memory (a restart forgets them; the failed-login log and
    the logs part's jail are what keep a persistent record)."""

    def __init__(
        self, limit: int, window: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.now = now
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        q = self._failures.get(address)
        if q is None:
            return deque()
        cutoff = self.now() - self.window
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._failures[address]
        return q

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        q = self._recent(address)
        if len(q) < self.limit:
            return 0.0
        return max(q[0] + self.window - self.now(), 0.001)

    def failed(self, address: str) -> None:
        self._recent(address)
        self._failures.setdefault(address, deque()).append(self.now())
        if len(self._failures) > 100_000:  # a flood of addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
