"""The JSON API under ``/api``: every page's data and every action, described in the OpenAPI
document at ``/openapi.json``. Reads need a session (of a viewer or an admin); actions also need
its CSRF token (the ``X-CSRF-Token`` header) and the admin role."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from stockade.durations import parse_duration
from stockade.errors import StockadeError
from stockade.model import Severity
from stockade.web import data
from stockade.web.dashboard import dashboard
from stockade.web.session import AdminRequired, Caller, check_csrf
from stockade.web.timeparse import parse_time
from stockade.web.views import AlertFilter


async def session_caller(request: Request) -> Caller:
    return await run_in_threadpool(dashboard(request).caller, request)


async def csrf_caller(
    request: Request, caller: Annotated[Caller, Depends(session_caller)]
) -> Caller:
    await check_csrf(request, caller)
    return caller


async def admin_caller(caller: Annotated[Caller, Depends(csrf_caller)]) -> Caller:
    """The caller of a state-changing route: a session, its CSRF token, and the admin role.
    The OpenAPI document marks every route that depends on this as needing an admin."""
    if not caller.admin:
        raise AdminRequired(caller)
    return caller


Reader = Annotated[Caller, Depends(session_caller)]
Admin = Annotated[Caller, Depends(admin_caller)]

router = APIRouter(prefix="/api")


def _bad(e: Exception) -> HTTPException:
    return HTTPException(400, str(e))


def alert_filter(
    since: str | None = None,
    until: str | None = None,
    severity: str | None = None,
    part: str | None = None,
    text: str = "",
) -> AlertFilter:
    now = time.time()
    try:
        return AlertFilter(
            since=parse_time(since, now) if since else None,
            until=parse_time(until, now) if until else None,
            severity=Severity.parse(severity) if severity else None,
            part=part or None,
            text=text.strip(),
        )
    except ValueError as e:
        raise _bad(e) from None


@router.get("/overview", summary="Alert counts over time, top offenders, bans, parts' state")
def get_overview(
    request: Request, caller: Reader, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24
) -> dict[str, Any]:
    d = dashboard(request)
    with d.store() as s:
        return data.overview(d.ctx, s, hours)


@router.get("/alerts", summary="Alerts, newest first, filtered, a page at a time")
def get_alerts(
    request: Request,
    caller: Reader,
    f: Annotated[AlertFilter, Depends(alert_filter)],
    limit: Annotated[int, Query(ge=1, le=data.ALERT_LIMIT)] = data.ALERT_LIMIT,
    before: Annotated[
        int | None, Query(description="the id of the last alert of the previous page")
    ] = None,
) -> list[dict[str, Any]]:
    with dashboard(request).store() as s:
        return data.alerts(s, f, limit, before)


@router.get("/alerts/stream", summary="New alerts as server-sent events (event: alert)")
async def stream_alerts(
    request: Request, caller: Reader, after: int | None = None
) -> StreamingResponse:
    d = dashboard(request)

    def newest() -> int:
        with d.store() as s:
            return data.last_alert_id(s)

    def fetch(cursor: int) -> list[dict[str, Any]]:
        with d.store() as s:
            return data.alerts_after(s, cursor)

    last_event = request.headers.get("last-event-id", "")
    start = int(last_event) if last_event.isdigit() else after
    cursor = start if start is not None else await run_in_threadpool(newest)

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        yield f"retry: 2000\nevent: hello\ndata: {cursor}\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            fresh = await run_in_threadpool(fetch, cursor)
            for a in fresh:
                cursor = max(cursor, int(a["id"]))
                yield f"id: {a['id']}\nevent: alert\ndata: {json.dumps(a)}\n\n"
            idle = 0.0 if fresh else idle + 1.0
            if idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(1.0)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/alerts/{alert_id}", summary="One alert with its evidence")
def get_alert(request: Request, caller: Reader, alert_id: int) -> dict[str, Any]:
    with dashboard(request).store() as s:
        a = data.alert(s, alert_id)
    if a is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return a


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an alert")
def acknowledge(request: Request, caller: Admin, alert_id: int) -> dict[str, Any]:
    with dashboard(request).store() as s:
        if not s.acknowledge_alert(alert_id):
            raise HTTPException(404, f"no alert {alert_id}")
    return {"id": alert_id, "acknowledged": True}


@router.get("/bans", summary="Active bans with jail, reason, matched lines and expiry")
def get_bans(request: Request, caller: Reader) -> list[dict[str, Any]]:
    with dashboard(request).store() as s:
        return data.active_bans(s)


@router.get("/bans/history", summary="Every ban of an address, newest first")
def get_history(request: Request, caller: Reader, address: str) -> list[dict[str, Any]]:
    with dashboard(request).store() as s:
        try:
            return data.ban_history(s, address)
        except StockadeError as e:
            raise _bad(e) from None


class BanRequest(BaseModel):
    address: str = Field(description="an address or network")
    duration: str = Field("1h", description="30m, 2d …; -1 bans for good")
    reason: str = ""


class UnbanRequest(BaseModel):
    address: str
    jail: str | None = Field(None, description="only the ban of this jail; default all")


@router.post("/bans", summary="Ban an address by hand (jail 'manual')")
def post_ban(request: Request, caller: Admin, body: BanRequest) -> dict[str, Any]:
    d = dashboard(request)
    try:
        seconds = -1.0 if body.duration.strip() == "-1" else parse_duration(body.duration)
        with d.store() as s:
            return data.ban(d.ctx, s, body.address, seconds, body.reason, caller.user)
    except (StockadeError, ValueError) as e:
        raise _bad(e) from None


@router.post("/bans/unban", summary="Lift the active bans of an address")
def post_unban(request: Request, caller: Admin, body: UnbanRequest) -> dict[str, Any]:
    d = dashboard(request)
    try:
        with d.store() as s:
            n = data.unban(d.ctx, s, body.address, body.jail, caller.user)
    except StockadeError as e:
        raise _bad(e) from None
    return {"address": body.address, "lifted": n}


@router.get("/files", summary="Pending file changes against the baseline, with their diffs")
def get_files(
    request: Request,
    caller: Reader,
    full: Annotated[
        bool,
        Query(description="compare every tree, not only the paths the running daemon found"),
    ] = False,
) -> dict[str, Any]:
    d = dashboard(request)
    try:
        with d.store() as s:
            return data.pending_files(d.ctx, s, full)
    except StockadeError as e:
        raise HTTPException(409, str(e)) from None


class AcceptFiles(BaseModel):
    paths: list[str] = Field(description="paths whose current state becomes the baseline")


@router.post("/files/accept", summary="Accept changes (as `stockade files accept PATH...`)")
def accept_files(request: Request, caller: Admin, body: AcceptFiles) -> dict[str, Any]:
    d = dashboard(request)
    try:
        with d.store() as s:
            return data.accept_files(d.ctx, s, body.paths)
    except StockadeError as e:
        raise _bad(e) from None


@router.get("/network", summary="Listeners and scan results against their baselines")
def get_network(request: Request, caller: Reader) -> dict[str, Any]:
    d = dashboard(request)
    with d.store() as s:
        return data.network(d.ctx, s)


class AcceptListeners(BaseModel):
    endpoints: list[str] = Field(
        default_factory=list,
        description="only these endpoints, as the deltas name them (tcp/0.0.0.0:4444); "
        "empty: every current listener",
    )


@router.post(
    "/network/sockets/accept",
    summary="Take the current listeners (or some endpoints) as the baseline",
)
def accept_sockets(
    request: Request, caller: Admin, body: AcceptListeners | None = None
) -> dict[str, Any]:
    d = dashboard(request)
    try:
        with d.store() as s:
            return data.accept_sockets(d.ctx, s, caller.user, body.endpoints if body else [])
    except StockadeError as e:
        raise _bad(e) from None


class AcceptScan(BaseModel):
    hosts: list[str] = Field(
        default_factory=list,
        description="only these hosts' part of the latest scan (empty: the whole scan)",
    )


@router.post(
    "/network/scan/{group}/accept",
    summary="Take a group's latest scan (or some hosts of it) as its baseline",
)
def accept_scan(
    request: Request, caller: Admin, group: str, body: AcceptScan | None = None
) -> dict[str, Any]:
    d = dashboard(request)
    try:
        with d.store() as s:
            return data.accept_scan(d.ctx, s, group, caller.user, body.hosts if body else [])
    except StockadeError as e:
        raise _bad(e) from None
