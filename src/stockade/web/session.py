"""Who is asking: the session behind a request's cookie, its user's role, and the CSRF check on
every request that changes something."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from stockade.model import ADMIN, WebSession
from stockade.web.auth import same, token_digest

COOKIE = "stockade_session"
LOGIN_COOKIE = "stockade_login"  # the login form's double-submit CSRF token
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login page, the API answers 401."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


class AdminRequired(Exception):
    """A state-changing request from a user who is not an admin: the API answers 403."""

    def __init__(self, caller: Caller) -> None:
        super().__init__(
            f"this action needs the admin role; {caller.user} is a {caller.role} "
            f"(an admin can run `stockade web role {caller.user} admin`)"
        )


@dataclass(frozen=True)
class Caller:
    session: WebSession

    @property
    def user(self) -> str:
        return self.session.user

    @property
    def role(self) -> str:
        return self.session.role

    @property
    def admin(self) -> bool:
        return self.session.role == ADMIN


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def lookup(request: Request, find: Callable[[str, float], WebSession | None]) -> Caller:
    """The caller of ``request``; raise LoginRequired. ``find(digest, now)`` reads the store."""
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 200:
        raise LoginRequired
    session = find(token_digest(token), time.time())
    if session is None:
        raise LoginRequired
    return Caller(session)


async def check_csrf(request: Request, caller: Caller) -> None:
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if not token or not same(token, caller.session.csrf):
        raise CsrfRefused
