"""``stockade scan TARGET... [-p PORTS] [-sS|-sT|-sn] [-Pn] [--exclude T,...] [-iL FILE] [--json]``.

Host discovery over all targets first (``-Pn`` skips it, ``-sn`` does only that), then a TCP
SYN (as root) or connect scan of the hosts found up, with nmap's flags. UDP scans, banners,
certificates, baselines and nmap XML output are not built yet (see the README).
"""

from __future__ import annotations

import argparse
import socket
import time
from typing import TYPE_CHECKING, Any

from stockade.cli.output import json_line, table
from stockade.errors import StockadeError, UsageError

if TYPE_CHECKING:
    from stockade.sensors.scan.report import HostReport


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "scan",
        help="find hosts that are up, and scan them for open TCP ports (SYN or connect scan)",
        parents=[common],
        description="Host discovery, then a TCP SYN scan (as root) or connect scan of the "
        "hosts found up, with nmap's flags: "
        "stockade scan 10.0.0.0/24 -p 22,80,8000-8100 --exclude 10.0.0.1; "
        "stockade scan -sn 10.0.0.0/24 (discovery only)",
    )
    p.add_argument("targets", nargs="*", metavar="TARGET", help="address, CIDR, range or name")
    p.add_argument("-p", dest="ports", default="top100", help="ports (default top100; - = all)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("-sT", dest="connect", action="store_true", help="TCP connect scan")
    kind.add_argument(
        "-sS", dest="syn", action="store_true", help="TCP SYN scan (root; the default as root)"
    )
    kind.add_argument(
        "-sn", dest="ping_only", action="store_true", help="host discovery only: no port scan"
    )
    p.add_argument(
        "-Pn", dest="no_ping", action="store_true", help="no host discovery: take every host as up"
    )
    p.add_argument("-iL", dest="input_list", metavar="FILE", help="read targets from FILE")
    p.add_argument("--exclude", default="", metavar="T,...", help="targets to leave out")
    p.add_argument("--retries", type=int, default=2, help="tries after the first (default 2)")
    p.add_argument("--rate", type=int, default=0, help="new connections a second (0 = no cap)")
    p.add_argument("--json", action="store_true", help="one JSON object per host")
    p.set_defaults(handler=cmd_scan)


def _resolve(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


def cmd_scan(args: argparse.Namespace) -> int:
    from stockade.sensors.scan.pipeline import ScanOptions, discover_hosts, scan_hosts
    from stockade.sensors.scan.ports import parse_ports
    from stockade.sensors.scan.targets import expand, parse_spec, parse_target_file

    if args.retries < 0 or args.rate < 0:
        raise UsageError("--retries and --rate must be 0 or more")
    specs = [parse_spec(t) for t in args.targets]
    if args.input_list:
        try:
            with open(args.input_list, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise StockadeError(f"-iL {args.input_list}: cannot read: {e.strerror}") from None
        specs += parse_target_file(text, args.input_list)
    if not specs:
        raise UsageError("no target; name addresses, ranges or host names, or -iL FILE")
    if args.ping_only and args.no_ping:
        raise UsageError("-sn and -Pn together leave nothing to do; drop one")
    exclude = [parse_spec(t, "--exclude") for t in args.exclude.split(",") if t.strip()]
    ports = parse_ports(args.ports)
    if not ports.tcp and not args.ping_only:
        raise UsageError("-p: no TCP port to scan (UDP scans are not built yet)")
    targets = expand(specs, exclude, resolve=_resolve)
    method = "syn" if args.syn else "connect" if args.connect else "auto"
    opts = ScanOptions(
        tcp=list(ports.tcp),
        method=method,
        discovery="none" if args.no_ping else "auto",
        retries=args.retries,
        rate=args.rate,
    )
    start = time.monotonic()
    found = discover_hosts(targets, opts)
    reports = found if args.ping_only else scan_hosts(targets, opts, found)
    up = 0
    for report in reports:
        up += report.state == "up"
        if args.json:
            json_line(report.to_json())
        elif args.ping_only:
            print_discovered(report)
        elif report.state == "up" or args.no_ping:  # as nmap: hosts found down are not listed
            print_host(report)
    if not args.json:
        print(
            f"{len(targets)} addresses ({up} {'host' if up == 1 else 'hosts'} up) "
            f"in {time.monotonic() - start:.2f} s"
        )
    return 0


def print_discovered(report: HostReport) -> None:
    if report.state != "up":
        return
    label = f"{report.address} ({report.name})" if report.name else report.address
    rtt = "" if report.rtt is None else f", {report.rtt * 1000:.2f} ms"
    print(f"{label}: up ({report.reason}{rtt})")


def print_host(report: HostReport) -> None:
    label = f"{report.address} ({report.name})" if report.name else report.address
    print(f"{label}: {report.state}, {len(report.ports)} ports in {report.elapsed:.2f} s")
    every = len(report.ports) <= 30
    shown = [p for p in report.ports if every or p.state == "open"]
    if shown:
        table([[f"{p.port}/{p.proto}", p.state] for p in shown], ["PORT", "STATE"])
    if not every:
        closed = sum(p.state == "closed" for p in report.ports)
        filtered = sum(p.state == "filtered" for p in report.ports)
        print(f"not shown: {closed} closed, {filtered} filtered")
    print()
