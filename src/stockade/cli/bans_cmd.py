"""``stockade bans list | ban ADDR | unban ADDR | flush``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.durations import format_duration, iso, parse_duration
from stockade.errors import StockadeError, UsageError
from stockade.model import BanRecord


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bans", help="list, add and lift bans", parents=[common])
    s = p.add_subparsers(dest="bans_command", metavar="ACTION", parser_class=type(p))
    s.required = True
    lst = s.add_parser("list", parents=[common], help="the active bans (--all: past ones too)")
    lst.add_argument("--all", action="store_true", help="every ban ever recorded")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)
    b = s.add_parser("ban", parents=[common], help="ban an address by hand")
    b.add_argument("address", metavar="ADDR")
    b.add_argument("--jail", default="manual", help="the jail to file it under (default manual)")
    b.add_argument("--time", default="1h", metavar="DURATION", help="1h, 7d, or permanent")
    b.add_argument("--reason", default="manual ban", help="why (kept with the ban)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=cmd_ban)
    u = s.add_parser("unban", parents=[common], help="lift the bans of an address")
    u.add_argument("address", metavar="ADDR")
    u.add_argument("--jail", help="only this jail's ban")
    u.add_argument("--json", action="store_true")
    u.set_defaults(handler=cmd_unban)
    f = s.add_parser("flush", parents=[common], help="remove every stockade ban from the firewall")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=cmd_flush)


def _service(args: argparse.Namespace) -> Any:
    from stockade.parts.logs.bans import BanService, build_allowlist, build_responder

    ctx = make_context(args)
    cfg = ctx.config.logs
    return BanService(
        ctx.open_store(), build_responder(cfg, build_allowlist(cfg)), ipv6_prefix=cfg.ipv6_prefix
    )


def ban_json(b: BanRecord, now: float) -> dict[str, Any]:
    return {
        "address": b.address,
        "jail": b.jail,
        "created": iso(b.created),
        "until": None if b.until is None else iso(b.until),
        "active": b.active(now),
        "reason": b.reason,
        "source": b.source,
        "failures": b.failures,
        "matches": list(b.matches),
        "lifted": None if b.lifted is None else iso(b.lifted),
        "lifted_by": b.lifted_by or None,
    }


def cmd_list(args: argparse.Namespace) -> int:
    from stockade.store import SqliteStore

    ctx = make_context(args)
    now = time.time()
    if not ctx.store_path.exists():
        bans: list[BanRecord] = []
    else:
        store = SqliteStore(ctx.store_path)
        bans = store.list_bans() if args.all else store.list_bans(active_at=now)
        store.close()
    if args.json:
        for b in bans:
            json_line(ban_json(b, now))
        return 0
    if not bans:
        print("no active bans" if not args.all else "no bans recorded")
        return 0
    rows = []
    for b in bans:
        left = (
            "permanent"
            if b.until is None
            else (format_duration(b.until - now) if b.until > now else "expired")
        )
        if b.lifted is not None:
            left = f"lifted ({b.lifted_by})"
        rows.append([b.address, b.jail, iso(b.created), left, str(b.failures), b.reason])
    table(rows, ["ADDRESS", "JAIL", "SINCE", "REMAINING", "FAILURES", "REASON"])
    return 0


def cmd_ban(args: argparse.Namespace) -> int:
    if args.time.lower() in ("permanent", "forever", "-1"):
        seconds = -1.0
    else:
        try:
            seconds = parse_duration(args.time)
        except ValueError as e:
            raise UsageError(f"--time: {e}") from None
        if seconds <= 0:
            raise UsageError("--time must be longer than 0 (or permanent)")
    svc = _service(args)
    out = svc.ban(
        args.address, jail=args.jail, seconds=seconds, reason=args.reason, source="manual"
    )
    if out.record is None:
        raise StockadeError(
            f"refusing to ban {args.address}: {out.refused} (the allowlist is absolute)"
        )
    if args.json:
        json_line(ban_json(out.record, time.time()))
    else:
        until = "permanently" if out.record.until is None else f"until {iso(out.record.until)}"
        print(f"banned {out.record.address} ({args.jail}) {until}")
    return 0


def cmd_unban(args: argparse.Namespace) -> int:
    svc = _service(args)
    n = svc.unban(args.address, jail=args.jail)
    if args.json:
        json_line({"address": args.address, "lifted": n})
    elif n:
        print(f"lifted {n} ban(s) of {args.address}")
    else:
        print(f"{args.address} had no active ban (removed from the firewall anyway)")
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    svc = _service(args)
    n = svc.flush()
    if args.json:
        json_line({"lifted": n})
    else:
        print(f"removed stockade's firewall table; {n} active ban(s) lifted")
    return 0
