"""The dashboard's shared state: the context, the login limiter and log, and store access."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fastapi import Request

from stockade.context import Context
from stockade.model import WebSession
from stockade.store.base import Store
from stockade.web.auth import FailureLimiter
from stockade.web.faillog import FailureLog
from stockade.web.session import Caller, lookup


class Dashboard:
    def __init__(self, ctx: Context, *, tls: bool) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.web
        self.tls = tls
        self.limiter = FailureLimiter(self.cfg.login_max_failures, self.cfg.login_window)
        self.faillog = FailureLog(failed_login_log(ctx))

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """A store connection for one request (SQLite connections belong to one thread)."""
        s = self.ctx.open_store()
        try:
            yield s
        finally:
            s.close()

    def find_session(self, digest: str, now: float) -> WebSession | None:
        with self.store() as s:
            return s.web_session(digest, now=now)

    def caller(self, request: Request) -> Caller:
        return lookup(request, self.find_session)


def failed_login_log(ctx: Context) -> Path:
    p = ctx.config.web.failed_login_log
    return Path(p) if p else ctx.state_dir / "web-auth.log"


def dashboard(request: Request) -> Dashboard:
    d = request.app.state.dashboard
    assert isinstance(d, Dashboard)
    return d
