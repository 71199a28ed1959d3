"""``stockade scan TARGET... [-p PORTS] [-sS|-sT] [-sV [--tls-ports LIST]] [-Pn]
[--exclude T,...] [-iL FILE] [--json]``.

A TCP SYN (as root) or connect scan of the targets, with nmap's flags; ``-sV`` adds the banner
and TLS certificate of each open port. Host discovery, UDP scans, baselines and nmap XML output
are not built yet (see the README).
"""

from __future__ import annotations

import argparse
import socket
from typing import TYPE_CHECKING, Any

from stockade.cli.output import json_line, table
from stockade.errors import StockadeError, UsageError

if TYPE_CHECKING:
    from stockade.sensors.scan.report import HostReport, PortReport


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "scan",
        help="scan hosts for open TCP ports (SYN or connect scan)",
        parents=[common],
        description="TCP SYN scan (as root) or connect scan with nmap's flags: "
        "stockade scan 10.0.0.0/24 -p 22,80,8000-8100 --exclude 10.0.0.1",
    )
    p.add_argument("targets", nargs="*", metavar="TARGET", help="address, CIDR, range or name")
    p.add_argument("-p", dest="ports", default="top100", help="ports (default top100; - = all)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("-sT", dest="connect", action="store_true", help="TCP connect scan")
    kind.add_argument(
        "-sS", dest="syn", action="store_true", help="TCP SYN scan (root; the default as root)"
    )
    p.add_argument(
        "-sV",
        dest="service_facts",
        action="store_true",
        help="banners and TLS certificates of open ports",
    )
    p.add_argument(
        "--tls-ports",
        metavar="LIST",
        help="with -sV: ports where TLS starts at once (default 443,465,636,853,993,995,5061,"
        "8443; none for none); other ports get TLS when their answer looks like it",
    )
    p.add_argument("-Pn", dest="no_ping", action="store_true", help="no host discovery (default)")
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
    from stockade.sensors.scan.pipeline import ScanOptions, scan_hosts
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
    exclude = [parse_spec(t, "--exclude") for t in args.exclude.split(",") if t.strip()]
    ports = parse_ports(args.ports)
    if not ports.tcp:
        raise UsageError("-p: no TCP port to scan (UDP scans are not built yet)")
    targets = expand(specs, exclude, resolve=_resolve)
    method = "syn" if args.syn else "connect" if args.connect else "auto"
    opts = ScanOptions(tcp=list(ports.tcp), method=method, retries=args.retries, rate=args.rate)
    opts.banners = args.service_facts
    if args.tls_ports is not None:
        opts.tls_ports = _tls_ports(args.tls_ports, args.service_facts)
    for report in scan_hosts(targets, opts):
        if args.json:
            json_line(report.to_json())
            continue
        print_host(report)
    return 0


def _tls_ports(text: str, service_facts: bool) -> list[int]:
    from stockade.sensors.scan.ports import parse_ports

    if not service_facts:
        raise UsageError("--tls-ports is only used with -sV; add -sV or leave --tls-ports out")
    if text.strip().lower() == "none":
        return []
    spec = parse_ports(text, what="--tls-ports")
    if spec.udp:
        raise UsageError(f"--tls-ports {text!r}: TLS ports are TCP ports; leave out U:")
    return list(spec.tcp)


def _facts_cell(p: PortReport) -> str:
    """The banner's first line and the certificate's subject and expiry, shortened."""
    parts = []
    if p.banner:
        line = p.banner.split("\n", 1)[0]
        parts.append(line if len(line) <= 48 else line[:47] + "…")
    if p.cert is not None:
        subject = p.cert.subject if len(p.cert.subject) <= 40 else p.cert.subject[:39] + "…"
        parts.append(f"[{subject}, expires {p.cert.not_after[:10]}]")
    return " ".join(parts)


def print_host(report: HostReport) -> None:
    label = f"{report.address} ({report.name})" if report.name else report.address
    print(f"{label}: {report.state}, {len(report.ports)} ports in {report.elapsed:.2f} s")
    every = len(report.ports) <= 30
    shown = [p for p in report.ports if every or p.state == "open"]
    facts = any(p.banner or p.cert for p in shown)
    if shown and facts:
        rows = [[f"{p.port}/{p.proto}", p.state, _facts_cell(p)] for p in shown]
        table(rows, ["PORT", "STATE", "SERVICE"])
    elif shown:
        table([[f"{p.port}/{p.proto}", p.state] for p in shown], ["PORT", "STATE"])
    if not every:
        closed = sum(p.state == "closed" for p in report.ports)
        filtered = sum(p.state == "filtered" for p in report.ports)
        print(f"not shown: {closed} closed, {filtered} filtered")
    print()
