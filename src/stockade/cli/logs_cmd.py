"""``stockade logs test LOGFILE FILTER`` (like fail2ban-regex) and ``stockade logs jails``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.durations import format_duration
from stockade.errors import UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("logs", help="log detection: test filters, list jails", parents=[common])
    s = p.add_subparsers(dest="logs_command", metavar="ACTION", parser_class=type(p))
    s.required = True
    t = s.add_parser(
        "test",
        parents=[common],
        help="run a filter over a log file, like fail2ban-regex",
        description="Run FILTER (a fail2ban filter name such as sshd or sshd[mode=aggressive], "
        "the path of a filter file, jail:NAME for a jail of the configuration, or a failregex) "
        "over LOGFILE and count what matches.",
    )
    t.add_argument("logfile", type=Path, metavar="LOGFILE")
    t.add_argument("filter", metavar="FILTER")
    t.add_argument("--print-missed", action="store_true", help="print the lines no regex matched")
    t.add_argument(
        "--json", action="store_true", help="one JSON object per matched line, then a summary"
    )
    t.add_argument("--datepattern", help="override the filter's date pattern")
    t.add_argument("--maxlines", type=int, help="override the filter's maxlines")
    t.add_argument("--workers", type=int, help="processes to use (default: one per CPU)")
    t.set_defaults(handler=cmd_test)
    j = s.add_parser(
        "jails", parents=[common], help="the jails stockade would run, and their sources"
    )
    j.add_argument("--json", action="store_true")
    j.set_defaults(handler=cmd_jails)


def cmd_test(args: argparse.Namespace) -> int:
    from stockade.parts.logs.test_filter import resolve_filter, run_test

    ctx = make_context(args)
    if not args.logfile.is_file():
        raise UsageError(f"{args.logfile}: no such log file")
    if args.maxlines is not None and args.maxlines < 1:
        raise UsageError("--maxlines must be 1 or more")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    f2b = Path(ctx.config.logs.fail2ban_dir) if ctx.config.logs.fail2ban_dir else None
    jails = []
    if args.filter.startswith("jail:"):
        from stockade.parts.logs.jails import build_jails

        jails = build_jails(ctx.config.logs)
    spec = resolve_filter(
        args.filter, f2b, datepattern=args.datepattern, maxlines=args.maxlines, jails=jails
    )
    mode = "json" if args.json else ("missed" if args.print_missed else "")
    result = run_test(args.logfile, spec, mode=mode, workers=args.workers or 0)
    rate = result.lines / result.seconds if result.seconds > 0 else 0.0
    out = sys.stdout
    if args.json:
        for line in result.output:
            n, rest = line.split("\t", 1)
            out.write(f'{{"line": {n}, {rest[1:]}\n')
        json_line(
            {
                "summary": {
                    "lines": result.lines,
                    "matched": result.matched,
                    "ignored": result.ignored,
                    "missed": result.missed,
                    "regex_hits": {str(k): v for k, v in sorted(result.per_regex.items())},
                    "seconds": round(result.seconds, 3),
                    "lines_per_second": round(rate),
                    "filter": spec.name,
                    "workers": result.workers,
                }
            }
        )
        return 0
    counts = f"{len(spec.failregex)} failregex, {len(spec.ignoreregex)} ignoreregex"
    print(f"Filter: {spec.name} ({counts})")
    print("Failregex hits:")
    for i, rx in enumerate(spec.failregex):
        print(f"  #{i:<3} {result.per_regex.get(i, 0):>9}  {rx[:100]}")
    print(
        f"Lines: {result.lines} lines, {result.matched} matched, {result.ignored} ignored, "
        f"{result.missed} missed"
    )
    print(
        f"Processed in {result.seconds:.2f} s ({rate:,.0f} lines/s, {result.workers} "
        f"process{'es' if result.workers > 1 else ''})"
    )
    if args.print_missed:
        print(f"Missed lines ({len(result.output)}):")
        for line in result.output:
            print(f"  {line.split(chr(9), 1)[1]}")
    return 0


def cmd_jails(args: argparse.Namespace) -> int:
    from stockade.parts.logs.jails import build_jails

    ctx = make_context(args)
    jails = build_jails(ctx.config.logs)
    if args.json:
        for j in jails:
            json_line(
                {
                    "name": j.name,
                    "origin": j.origin,
                    "filter": j.spec.name,
                    "logpath": list(j.logpath),
                    "journalmatch": [list(g) for g in j.journalmatch],
                    "backend": j.backend,
                    "maxretry": j.maxretry,
                    "findtime": j.findtime,
                    "bantime": j.bantime,
                    "ports": list(j.ports) if j.ports else None,
                }
            )
        return 0
    if not jails:
        print("no jail is enabled")
        return 0
    rows = []
    for j in jails:
        src = ", ".join(j.logpath) or "journal " + " + ".join(" ".join(g) for g in j.journalmatch)
        ban = "permanent" if j.bantime < 0 else format_duration(j.bantime)
        rows.append(
            [
                j.name,
                j.spec.name,
                f"{j.maxretry} in {format_duration(j.findtime)}",
                ban,
                ",".join(j.ports) if j.ports else "all",
                j.backend,
                src,
            ]
        )
    table(rows, ["JAIL", "FILTER", "MAXRETRY", "BANTIME", "PORTS", "BACKEND", "SOURCES"])
    return 0
