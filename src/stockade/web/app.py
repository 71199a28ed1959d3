"""The dashboard application: login and logout, the API, the pages, and what guards them
(sessions, CSRF tokens, the failed-login limit, security headers)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from stockade import __version__
from stockade.context import Context
from stockade.web import api, pages
from stockade.web.auth import open_session, same, verify_password
from stockade.web.dashboard import Dashboard, dashboard
from stockade.web.roles import openapi_with_roles
from stockade.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    AdminRequired,
    CsrfRefused,
    LoginRequired,
    check_csrf,
    client_address,
)
from stockade.web.templating import templates

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def _safe_next(target: str) -> str:
    """Only a path of this site may follow a login (no //host, no scheme)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def create_app(ctx: Context, *, tls: bool = False) -> FastAPI:
    app = FastAPI(
        title="stockade dashboard",
        version=__version__,
        description="What changed on this host, what was blocked and why. Every route needs "
        "a session (log in at /login). GET routes are open to every role (viewer or admin); "
        "POST routes change something: they need the admin role and the X-CSRF-Token header. "
        "Each operation states its role as x-required-role.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.dashboard = Dashboard(ctx, tls=tls)
    app.add_middleware(_Headers)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            return JSONResponse({"detail": "log in first (POST /login)"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return JSONResponse({"detail": "missing or wrong CSRF token"}, status_code=403)

    @app.exception_handler(AdminRequired)
    async def _admin(request: Request, exc: AdminRequired) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        await api.session_caller(request)
        return JSONResponse(openapi_with_roles(app))

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> Response:
        return _login_form(request, _safe_next(next), "", 200)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        d = dashboard(request)
        form = await request.form()
        user = str(form.get("user", ""))[:200]
        password = str(form.get("password", ""))[:1000]
        target = _safe_next(str(form.get("next", "/")))
        address = client_address(request)
        given, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not same(given, expected):
            return _login_form(request, target, "the login form expired; try again", 403)
        wait = d.limiter.retry_after(address)
        if wait > 0:
            response = _login_form(
                request, target, f"too many failed logins; wait {wait:.0f}s", 429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response

        def check() -> tuple[str, float] | None:
            with d.store() as s:
                if not verify_password(s.web_user_hash(user), password):
                    return None
                token, session = open_session(s, user, d.cfg.session_lifetime, address)
                return token, session.expires

        opened = await run_in_threadpool(check)
        if opened is None:
            d.limiter.failed(address)
            await run_in_threadpool(d.faillog.write, user, address)
            return _login_form(request, target, "wrong user name or password", 401)
        d.limiter.succeeded(address)
        token, expires = opened
        response = RedirectResponse(target, status_code=303)
        _set_cookie(request, response, COOKIE, token, int(expires - time.time()))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        d = dashboard(request)
        caller = await api.session_caller(request)
        await check_csrf(request, caller)

        def end() -> None:
            with d.store() as s:
                s.delete_web_sessions(digest=caller.session.digest)

        await run_in_threadpool(end)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return app


def _login_form(request: Request, target: str, error: str, status: int) -> Response:
    """The login form with a fresh form token (double-submitted: cookie and field)."""
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": token, "next": target, "error": error, "user": None},
        status_code=status,
    )
    _set_cookie(request, response, LOGIN_COOKIE, token, 600)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    d = dashboard(request)
    response.set_cookie(
        name,
        value,
        max_age=max(age, 1),
        path="/",
        httponly=True,
        samesite="strict",
        secure=bool(d.tls),
    )
