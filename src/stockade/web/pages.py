"""The HTML pages: server-rendered from the same data the API returns; their buttons call the
API (and are left out for viewers: the API refuses them anyway), and a small script adds new
alerts as they arrive (server-sent events)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from stockade.errors import StockadeError
from stockade.web import data
from stockade.web.api import Reader, alert_filter
from stockade.web.dashboard import dashboard
from stockade.web.session import Caller
from stockade.web.templating import templates
from stockade.web.views import PARTS, AlertFilter, chart_bars

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

#: alerts on one page of the alert list; "Older alerts" shows the next
ALERTS_PAGE = 100

SEVERITY_COLOURS = {
    "info": "#8a94a6",
    "low": "#4c9be8",
    "medium": "#e0b400",
    "high": "#e8772e",
    "critical": "#d0312d",
}


def _page(request: Request, caller: Caller, name: str, active: str, **ctx: Any) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": caller.user,
            "role": caller.role,
            "admin": caller.admin,
            "csrf": caller.session.csrf,
            "active": active,
            **ctx,
        },
    )


@router.get("/")
def overview(request: Request, caller: Reader, hours: int = 24) -> Response:
    d = dashboard(request)
    hours = min(max(hours, 1), 24 * 31)
    with d.store() as s:
        o = data.overview(d.ctx, s, hours)
    return _page(
        request,
        caller,
        "overview.html",
        "overview",
        o=o,
        bars=chart_bars(o["timeline"]["severity"]),
        part_bars=chart_bars(o["timeline"]["part"]),
        colours=SEVERITY_COLOURS,
        part_colours=dict(zip(PARTS, ("#6c5ce7", "#00a8a8", "#e84393", "#2d98da"), strict=True)),
    )


@router.get("/alerts")
def alerts(
    request: Request,
    caller: Reader,
    f: Annotated[AlertFilter, Depends(alert_filter)],
    before: int | None = None,
) -> Response:
    with dashboard(request).store() as s:
        rows = data.alerts(s, f, ALERTS_PAGE, before)
    q = request.query_params
    filters = {k: q.get(k, "") for k in ("since", "until", "severity", "part", "text")}
    older = None
    if len(rows) == ALERTS_PAGE:
        keep = {k: v for k, v in filters.items() if v}
        older = "/alerts?" + urlencode({**keep, "before": rows[-1]["id"]})
    return _page(
        request,
        caller,
        "alerts.html",
        "alerts",
        alerts=rows,
        q=filters,
        parts=PARTS,
        filtered=any(filters.values()) or before is not None,
        older=older,
        paged=before is not None,
    )


@router.get("/alerts/{alert_id}")
def alert(request: Request, caller: Reader, alert_id: int) -> Response:
    with dashboard(request).store() as s:
        a = data.alert(s, alert_id)
    if a is None:
        return _page(request, caller, "missing.html", "alerts", what=f"alert {alert_id}")
    return _page(request, caller, "alert.html", "alerts", a=a)


@router.get("/bans")
def bans(request: Request, caller: Reader, address: str = "") -> Response:
    history: list[dict[str, Any]] | None = None
    error = ""
    with dashboard(request).store() as s:
        active = data.active_bans(s)
        if address:
            try:
                history = data.ban_history(s, address)
            except StockadeError as e:
                error = str(e)
    return _page(
        request,
        caller,
        "bans.html",
        "bans",
        bans=active,
        address=address,
        history=history,
        error=error,
    )


@router.get("/files")
def files(request: Request, caller: Reader, full: bool = False) -> Response:
    d = dashboard(request)
    error = ""
    pending: dict[str, Any] = {"baseline": None, "changes": [], "notes": []}
    try:
        with d.store() as s:
            pending = data.pending_files(d.ctx, s, full)
    except StockadeError as e:
        error = str(e)
    return _page(request, caller, "files.html", "files", p=pending, error=error)


@router.get("/network")
def network(request: Request, caller: Reader) -> Response:
    d = dashboard(request)
    with d.store() as s:
        n = data.network(d.ctx, s)
    return _page(request, caller, "network.html", "network", n=n)
