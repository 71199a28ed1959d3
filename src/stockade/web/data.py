"""The dashboard's reads and actions on one store: what the API returns and the pages show.

Every function takes an open store (one per request: SQLite connections stay in their thread)
and returns JSON-ready data; the actions go through the same services as the CLI.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from stockade.context import Context
from stockade.errors import IntegrityError, UsageError
from stockade.model import Alert, Severity
from stockade.store.base import Store
from stockade.web.views import (
    AlertFilter,
    alert_json,
    ban_json,
    filter_alerts,
    severity_counts,
    timeline,
    top_offenders,
)

ALERT_LIMIT = 500


def overview(
    ctx: Context, store: Store, hours: int = 24, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    start = now - hours * 3600
    recent = store.list_alerts(since=start)
    bans = store.list_bans(limit=10000)
    active = [b for b in bans if b.active(now)]
    return {
        "now": now,
        "hours": hours,
        "timeline": timeline(recent, start, now, hours),
        "severity_counts": severity_counts(recent),
        "unacknowledged": sum(1 for a in recent if not a.acknowledged),
        "top_offenders": top_offenders(bans),
        "active_bans": [ban_json(b, now) for b in reversed(active)],
        "parts": parts_state(ctx, store),
    }


def _version(store: Store, part: str) -> dict[str, Any] | None:
    v = store.baseline_version(part)
    if v is None:
        return None
    return {"version": v.version, "created": v.created, "entries": v.entries, "note": v.note}


def _state_time(store: Store, key: str) -> float | None:
    text = store.get_state(key)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    t = value.get("time") if isinstance(value, dict) else value
    return float(t) if isinstance(t, int | float) else None


def parts_state(ctx: Context, store: Store) -> list[dict[str, Any]]:
    """Per part: enabled, its baseline (version, when) and the time of its last check."""
    cfg = ctx.config
    out: list[dict[str, Any]] = [
        {
            "part": "files",
            "enabled": cfg.files.enabled,
            "baseline": _version(store, "files"),
            "last_check": _state_time(store, "files.last_check"),
        },
        {
            "part": "logs",
            "enabled": cfg.logs.enabled,
            "baseline": None,
            "last_check": None,  # the logs part follows its logs: there is no check to time
            "last_ban": max((b.created for b in store.list_bans(limit=1)), default=None),
            "jails": [j.name for j in cfg.logs.jails if j.enabled],
        },
        {
            "part": "sockets",
            "enabled": cfg.sockets.enabled,
            "baseline": _version(store, "sockets"),
            "last_check": _state_time(store, "sockets.last_check"),
        },
    ]
    from stockade.parts.scan.service import baseline_part

    for g in cfg.scan.groups:
        latest = store.list_scans(group=g.name, limit=1)
        out.append(
            {
                "part": f"scan/{g.name}",
                "enabled": cfg.scan.enabled,
                "baseline": _version(store, baseline_part(g.name)),
                "last_check": latest[0].finished if latest else None,
            }
        )
    return out


# -- alerts ------------------------------------------------------------------------------


def alerts(
    store: Store, f: AlertFilter, limit: int = ALERT_LIMIT, before: int | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts that ``f`` keeps, newest first; with ``before`` (an alert
    id), those older than that alert: the next page. Read from the store in batches, so a page
    costs what it shows (and what the text filter skips), not the whole table."""
    out: list[Alert] = []
    cursor = before
    batch = max(limit, ALERT_LIMIT)
    while len(out) < limit:
        found = store.list_alerts(
            since=f.since,
            part=f.part or None,
            min_severity=f.severity,
            limit=batch,
            before_id=cursor,
        )
        out.extend(filter_alerts(reversed(found), f)[: limit - len(out)])
        if len(found) < batch:
            break
        cursor = found[0].id
    return [alert_json(a) for a in out]


def alert(store: Store, alert_id: int) -> dict[str, Any] | None:
    a = store.get_alert(alert_id)
    return None if a is None else alert_json(a, detail=True)


def last_alert_id(store: Store) -> int:
    return store.last_alert_id()


def alerts_after(store: Store, after: int) -> list[dict[str, Any]]:
    return [alert_json(a) for a in store.list_alerts(after_id=after)]


# -- bans --------------------------------------------------------------------------------


def _bans_service(ctx: Context, store: Store) -> Any:
    from stockade.parts.logs.bans import BanService, build_allowlist, build_responder

    cfg = ctx.config.logs
    return BanService(
        store, build_responder(cfg, build_allowlist(cfg)), ipv6_prefix=cfg.ipv6_prefix
    )


def active_bans(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [ban_json(b, now) for b in reversed(store.list_bans(active_at=now))]


def ban_history(store: Store, address: str) -> list[dict[str, Any]]:
    from stockade.parts.logs.bans import network_of

    net = network_of(address)
    key = str(net) if net.prefixlen < net.max_prefixlen else str(net.network_address)
    now = time.time()
    return [ban_json(b, now) for b in reversed(store.list_bans(address=key))]


def ban(
    ctx: Context, store: Store, address: str, seconds: float, reason: str, user: str
) -> dict[str, Any]:
    out = _bans_service(ctx, store).ban(
        address,
        jail="manual",
        seconds=seconds,
        reason=reason or f"banned from the dashboard by {user}",
        source="manual",
    )
    if out.record is None:
        raise UsageError(f"{address} is not banned: {out.refused}")
    return ban_json(out.record, time.time())


def unban(ctx: Context, store: Store, address: str, jail: str | None, user: str) -> int:
    return int(_bans_service(ctx, store).unban(address, jail=jail, by=f"web:{user}"))


# -- files -------------------------------------------------------------------------------


def pending_files(ctx: Context, store: Store, full: bool = False) -> dict[str, Any]:
    """The changes against the file baseline. Where the running daemon has stored the paths it
    knows to differ (``files.changed``), only those are compared — as fast as the list is long;
    ``full`` (or no such list) compares every tree, as ``stockade files check`` does."""
    from stockade.parts.files.changed import CHANGED_STATE, read_changed
    from stockade.parts.files.report import Report
    from stockade.parts.files.service import FilesService
    from stockade.sensors.files.policy import contains

    svc = FilesService(ctx, store)
    if not svc.exists():
        return {"baseline": None, "changes": [], "notes": [], "scope": "full"}
    base = svc.load()
    known = None if full else read_changed(store.get_state(CHANGED_STATE))
    if known is not None and known.paths is not None:
        paths = [p for p in known.paths if any(contains(r, p) for r in base.roots)]
        report = svc.compare(base, paths) if paths else Report(version=base.version.version)
        scope = {"scope": "daemon", "updated": known.updated, "checked": known.checked}
    else:
        report = svc.compare(base)
        scope = {"scope": "full"}
    return {
        "baseline": {"version": base.version.version, "created": base.version.created},
        "changes": [f.to_json() for f in report.findings],
        "notes": [n.to_json() for n in report.notes],
        "counts": report.counts,
        **scope,
    }


def accept_files(ctx: Context, store: Store, paths: list[str]) -> dict[str, Any]:
    from stockade.parts.files.service import FilesService

    if not paths:
        raise UsageError("no path given: select the changes to accept")
    findings, version = FilesService(ctx, store).accept([os.fsencode(p) for p in paths])
    return {"accepted": len(findings), "version": version}


# -- network -----------------------------------------------------------------------------


def network(ctx: Context, store: Store) -> dict[str, Any]:
    from stockade.detectors.scan.deltas import compare
    from stockade.parts.scan.service import ScanService
    from stockade.parts.sockets.service import SocketsService

    socks = SocketsService(ctx, store)
    current = socks.current()
    sockets_error = None
    try:
        base = socks.baseline()
        found = socks.check(current).deltas
    except IntegrityError as e:
        base, found, sockets_error = None, [], str(e)
    listeners = [
        {
            "endpoint": lst.endpoint(),
            "proto": lst.proto,
            "program": lst.program,
            "in_baseline": base is not None and key in base,
        }
        for key, lst in sorted(current.items())
    ]
    groups = []
    scans = ScanService(ctx, store)
    for g in ctx.config.scan.groups:
        latest = scans.latest(g.name)
        error = None
        try:
            baseline = scans.baseline(g.name)
        except IntegrityError as e:
            baseline, error = {}, str(e)
        deltas = compare(baseline, scans.hosts(latest), g.key_by_mac) if latest and baseline else []
        groups.append(
            {
                "group": g.name,
                "latest": None
                if latest is None
                else {
                    "id": latest.id,
                    "finished": latest.finished,
                    "hosts_up": latest.hosts_up,
                    "open_ports": latest.open_ports,
                },
                "has_baseline": bool(baseline),
                "error": error,
                "deltas": [{"message": x.describe(), **x.to_json()} for x in deltas],
            }
        )
    return {
        "sockets": {
            "baseline": _version(store, "sockets"),
            "listeners": listeners,
            "deltas": [
                {
                    "kind": d.kind,
                    "subject": d.subject,
                    "message": d.describe(),
                    "old": d.old.text() if d.old else None,
                    "new": d.new.text() if d.new else None,
                }
                for d in found
            ],
            "error": sockets_error,
        },
        "scan": groups,
    }


def accept_sockets(ctx: Context, store: Store, user: str, endpoints: list[str]) -> dict[str, Any]:
    from stockade.parts.sockets.service import SocketsService

    svc = SocketsService(ctx, store)
    version, changes = svc.accept(note=f"accept (web:{user})", endpoints=endpoints)
    return {"version": version, "changes": changes}


def accept_scan(
    ctx: Context, store: Store, group: str, user: str, hosts: list[str]
) -> dict[str, Any]:
    from stockade.parts.scan.service import ScanService

    svc = ScanService(ctx, store)
    version, changes = svc.accept(group, note=f"accept (web:{user})", hosts=hosts)
    return {"version": version, "changes": changes}


def severity_of(text: str | None) -> Severity | None:
    return Severity.parse(text) if text else None
