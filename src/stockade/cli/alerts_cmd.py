"""``stockade alerts [--since 1h] [--part files] [--severity high] [--json]``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.durations import iso, parse_duration
from stockade.errors import UsageError
from stockade.model import Severity


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "alerts",
        help="list stored alerts",
        parents=[common],
        description="List stored alerts, oldest first.",
    )
    p.add_argument("--since", metavar="DURATION", help="only the last DURATION (30m, 1h, 7d)")
    p.add_argument("--part", help="only this part (files, ...)")
    p.add_argument("--severity", metavar="LEVEL", help="at least this severity")
    p.add_argument(
        "--limit", type=int, default=1000, help="at most this many, the newest (default 1000)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as e:
            raise UsageError(f"--since: {e}") from None
    severity = None
    if args.severity:
        try:
            severity = Severity.parse(args.severity)
        except ValueError as e:
            raise UsageError(f"--severity: {e}") from None
    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    ctx = make_context(args)
    if not ctx.store_path.exists():
        alerts = []
    else:
        store = ctx.open_store()
        alerts = store.list_alerts(
            since=since, part=args.part, min_severity=severity, limit=args.limit
        )
        store.close()
    if args.json:
        for a in alerts:
            json_line(
                {
                    "id": a.id,
                    "time": iso(a.time),
                    "host": a.host,
                    "part": a.part,
                    "kind": a.kind,
                    "subject": a.subject,
                    "severity": str(a.severity),
                    "detail": a.detail,
                    "acknowledged": a.acknowledged,
                }
            )
        return 0
    if not alerts:
        print("no alerts")
        return 0
    table(
        [[str(a.id), iso(a.time), str(a.severity), a.part, a.kind, a.subject] for a in alerts],
        ["ID", "TIME", "SEVERITY", "PART", "KIND", "SUBJECT"],
    )
    return 0
