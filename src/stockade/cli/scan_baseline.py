"""``stockade scan check|list|diff|accept``: the configured scan groups against their baselines.

``check`` scans groups now (the first check of a group makes its baseline), confirms and prints
what changed, and exits 1 when something did; ``list`` shows the stored scans; ``diff A B``
compares two stored scans (or ``baseline``); ``accept [SCAN_ID]`` makes a scan the baseline.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from stockade.cli.output import json_line, table
from stockade.errors import UsageError

if TYPE_CHECKING:
    from stockade.detectors.scan.deltas import Delta
    from stockade.parts.scan.service import ScanService

ACTIONS = ("check", "list", "diff", "accept")


def run(action: str, rest: list[str], args: argparse.Namespace, ctx: Any) -> int:
    from stockade.parts.scan.service import ScanService

    store = ctx.open_store()
    try:
        svc = ScanService(ctx, store)
        if args.accept_hosts and action != "accept":
            raise UsageError(f"--host goes with scan accept, not scan {action}")
        if action == "check":
            _no_more(action, rest)
            return _check(svc, args)
        if action == "list":
            _no_more(action, rest)
            return _list(svc, args)
        if action == "diff":
            return _diff(svc, args, rest)
        return _accept(svc, args, rest)
    finally:
        store.close()


def _no_more(action: str, rest: list[str]) -> None:
    if rest:
        raise UsageError(f"scan {action}: unexpected argument {rest[0]!r}")


def _print_deltas(deltas: list[Delta], args: argparse.Namespace, group: str) -> None:
    for x in deltas:
        if args.json:
            json_line({"group": group, **x.to_json()})
        else:
            print(f"{x.kind:15} {x.describe()}")


def _check(svc: ScanService, args: argparse.Namespace) -> int:
    changed = False
    for g in svc.groups(args.group):
        out = svc.check(g)
        up = sum(r.state == "up" for r in out.reports)
        opened = sum(len(r.open_ports()) for r in out.reports if r.state == "up")
        summary = (
            f"scan {g.name}: scan {out.scan_id}, {up} of {len(out.reports)} hosts up, "
            f"{opened} open ports, {out.elapsed:.1f} s"
        )
        if out.version is None:
            version, _ = svc.accept(g.name, out.scan_id, note="first check")
            if not args.json:
                print(f"{summary}; no baseline yet: this scan is baseline version {version}")
            continue
        expiring = svc.expiring(g, out.reports)
        _print_deltas(out.deltas + expiring, args, g.name)
        changed = changed or bool(out.deltas or expiring)
        if not args.json:
            note = f" ({out.unconfirmed} not confirmed by a second look)" if out.unconfirmed else ""
            state = f"{len(out.deltas)} changes" if out.deltas else "no change"
            print(f"{summary}; {state} against baseline version {out.version}{note}")
    return 1 if changed else 0


def _list(svc: ScanService, args: argparse.Namespace) -> int:
    scans = svc.store.list_scans(group=args.group)
    if args.json:
        for s in scans:
            json_line(
                {
                    "id": s.id,
                    "group": s.group,
                    "started": s.started,
                    "finished": s.finished,
                    "hosts_up": s.hosts_up,
                    "hosts_total": s.hosts_total,
                    "open_ports": s.open_ports,
                }
            )
        return 0
    table(
        [
            [
                str(s.id),
                s.group,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.started)),
                f"{s.finished - s.started:.1f} s",
                f"{s.hosts_up}/{s.hosts_total}",
                str(s.open_ports),
            ]
            for s in scans
        ],
        ["ID", "GROUP", "STARTED", "TOOK", "UP", "OPEN PORTS"],
    )
    return 0


def _side(svc: ScanService, text: str, group: str | None) -> tuple[str, dict[str, Any]]:
    """A stored scan (its id) or ``baseline`` (of the group): its group and host snapshots."""
    if text == "baseline":
        g = svc.group(group)
        return g.name, dict(svc.baseline(g.name))
    try:
        scan_id = int(text)
    except ValueError:
        raise UsageError(f"scan diff: {text!r} is neither a scan id nor 'baseline'") from None
    rec = svc.scan(scan_id)
    return rec.group, dict(svc.hosts(rec))


def _diff(svc: ScanService, args: argparse.Namespace, rest: list[str]) -> int:
    from stockade.detectors.scan.deltas import compare

    if len(rest) > 2:
        raise UsageError("scan diff: give at most two scans (ids or 'baseline')")
    if len(rest) < 2:
        g = svc.group(args.group)
        latest = svc.latest(g.name)
        if latest is None:
            raise UsageError(f"scan diff: group {g.name!r} has no stored scan yet")
        rest = (rest or ["baseline"]) + [str(latest.id)]
    group_a, a = _side(svc, rest[0], args.group)
    group_b, b = _side(svc, rest[1], args.group or group_a)
    key_by_mac = next((g.key_by_mac for g in svc.cfg.groups if g.name == group_b), True)
    deltas = compare(a, b, key_by_mac)
    _print_deltas(deltas, args, group_b)
    if not args.json and not deltas:
        print(f"scan diff {rest[0]} {rest[1]}: no change")
    return 1 if deltas else 0


def _accept(svc: ScanService, args: argparse.Namespace, rest: list[str]) -> int:
    if len(rest) > 1:
        raise UsageError("scan accept: give at most one scan id")
    scan_id = None
    if rest:
        try:
            scan_id = int(rest[0])
        except ValueError:
            raise UsageError(f"scan accept: {rest[0]!r} is not a scan id") from None
    group = args.group
    if group is None and scan_id is not None:
        group = svc.scan(scan_id).group
    g = svc.group(group)
    version, changes = svc.accept(g.name, scan_id, hosts=args.accept_hosts)
    if args.json:
        json_line({"group": g.name, "version": version, "changes": changes})
    else:
        print(f"scan {g.name}: baseline version {version} ({changes} host changes taken)")
    return 0
