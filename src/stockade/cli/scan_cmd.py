"""``stockade scan TARGET... [-p PORTS] [-sS|-sT|-sn] [-sU] [-sV [--tls-ports LIST]] [-Pn]
[--exclude T,...] [-iL FILE] [--traceroute] [--json] [-oX FILE]``, and ``stockade scan
check|list|diff|accept`` for the scan groups.

Host discovery over all targets first (``-Pn`` skips it, ``-sn`` does only that), then a TCP
SYN (as root) or connect scan and a UDP scan (``-sU``) of the hosts found up, with nmap's
flags: ``-sU`` alone scans only UDP, ``-sU -sS`` both; ports without a ``T:``/``U:`` prefix go
to every scan asked for. ``-oX`` also writes nmap's XML (``-`` for standard output, which then
carries the XML only), host by host, so an interrupted scan still leaves a whole file.
``-sV`` adds the banner and TLS certificate of each open TCP port, ``--traceroute`` the
path to each host that is up.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from stockade.cli import scan_baseline
from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.cli.scan_baseline import ACTIONS
from stockade.errors import StockadeError, UsageError

if TYPE_CHECKING:
    from stockade.sensors.scan.nmapxml import NmapXmlWriter
    from stockade.sensors.scan.pipeline import ScanOptions
    from stockade.sensors.scan.report import Hop, HostReport, PortReport


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "scan",
        help="find hosts that are up and scan their TCP and UDP ports (SYN, connect, UDP)",
        parents=[common],
        description="Host discovery, then a TCP SYN scan (as root) or connect scan, and a UDP "
        "scan, of the hosts found up, with nmap's flags: "
        "stockade scan 10.0.0.0/24 -p 22,80,8000-8100 --exclude 10.0.0.1; "
        "stockade scan -sU -sS -p U:53,161,T:22 10.0.0.1; "
        "stockade scan -sn 10.0.0.0/24 (discovery only)",
    )
    p.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="address, CIDR, range or name; or check|list|diff|accept for the scan groups",
    )
    p.add_argument("--group", metavar="NAME", help="scan group (check, list, diff, accept)")
    p.add_argument(
        "--host",
        dest="accept_hosts",
        action="append",
        default=[],
        metavar="ADDR",
        help="scan accept: take only this host's part of the scan (repeat for more)",
    )
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
    p.add_argument(
        "-sU", dest="udp", action="store_true", help="UDP scan (with -sS or -sT: TCP as well)"
    )
    p.add_argument(
        "-sV",
        dest="service_facts",
        action="store_true",
        help="banners and TLS certificates of open ports",
    )
    p.add_argument(
        "--version-intensity",
        type=int,
        default=7,
        metavar="0-9",
        help="with -sV: send version probes of rarity up to this (default 7; 0: match the "
        "banner only)",
    )
    p.add_argument("--version-light", action="store_true", help="with -sV: --version-intensity 2")
    p.add_argument("--version-all", action="store_true", help="with -sV: --version-intensity 9")
    p.add_argument(
        "--tls-ports",
        metavar="LIST",
        help="with -sV: ports where TLS starts at once (default 443,465,636,853,993,995,5061,"
        "8443; none for none); other ports get TLS when their answer looks like it",
    )
    p.add_argument("-iL", dest="input_list", metavar="FILE", help="read targets from FILE")
    p.add_argument("--exclude", default="", metavar="T,...", help="targets to leave out")
    p.add_argument("--retries", type=int, default=2, help="tries after the first (default 2)")
    p.add_argument(
        "--rate", type=int, default=0, help="new connections or datagrams a second (0 = no cap)"
    )
    p.add_argument("--traceroute", action="store_true", help="trace the path to each host up")
    p.add_argument("--json", action="store_true", help="one JSON object per host")
    p.add_argument(
        "-oX", dest="xml_out", metavar="FILE", help="also write nmap's XML to FILE (- = stdout)"
    )
    p.set_defaults(handler=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    from stockade.sensors.scan.pipeline import ScanOptions, discover_hosts, scan_hosts
    from stockade.sensors.scan.ports import parse_ports
    from stockade.sensors.scan.targets import (
        expand,
        parse_spec,
        parse_target_file,
        resolve_name,
    )

    if args.targets and args.targets[0] in ACTIONS:
        return scan_baseline.run(args.targets[0], args.targets[1:], args, make_context(args))
    if args.group:
        raise UsageError("--group goes with scan check|list|diff|accept")
    if args.accept_hosts:
        raise UsageError("--host goes with scan accept")
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
    if args.ping_only and args.udp:
        raise UsageError("-sn is discovery only; leave out -sU")
    want_tcp = (args.syn or args.connect or not args.udp) and not args.ping_only
    # as nmap: ports without a T:/U: prefix go to every scan asked for
    tcp = parse_ports(args.ports).tcp if want_tcp else ()
    udp = parse_ports(args.ports, default_proto="udp").udp if args.udp else ()
    if want_tcp and not tcp:
        raise UsageError(f"-p {args.ports}: no TCP port to scan; add -sU to scan UDP ports")
    if args.udp and not udp:
        raise UsageError(f"-p {args.ports}: no UDP port to scan; name some (U:53) for -sU")
    if 0 in udp:
        raise UsageError(
            f"-p {args.ports}: UDP port 0 cannot be probed from a socket; leave it out"
        )
    targets = expand(specs, exclude, resolve=resolve_name)
    method = "syn" if args.syn else "connect" if args.connect else "auto"
    opts = ScanOptions(
        tcp=list(tcp),
        udp=list(udp),
        method=method,
        discovery="none" if args.no_ping else "auto",
        retries=args.retries,
        rate=args.rate,
        traceroute=args.traceroute,
    )
    opts.banners = args.service_facts
    opts.version_intensity = _intensity(args)
    if args.tls_ports is not None:
        opts.tls_ports = _tls_ports(args.tls_ports, args.service_facts)
    xml = _XmlOut(args, opts) if args.xml_out else None
    error: str | None = None
    start = time.monotonic()
    up = 0
    try:
        found = discover_hosts(targets, opts)
        reports = found if args.ping_only else scan_hosts(targets, opts, found)
        for report in reports:
            up += report.state == "up"
            if xml is not None:
                xml.host(report)
                if xml.stream is sys.stdout:
                    continue
            if args.json:
                json_line(report.to_json())
            elif args.ping_only:
                print_discovered(report)
            elif report.state == "up" or args.no_ping:  # as nmap: hosts found down not listed
                print_host(report)
    except BaseException as e:
        error = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e) or repr(e)
        raise
    finally:
        if xml is not None:
            xml.close(error)
    if not args.json and not (xml is not None and xml.stream is sys.stdout):
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


class _XmlOut:
    """``-oX FILE``: the header at once, each host as it is done, the footer at the end."""

    def __init__(self, args: argparse.Namespace, opts: ScanOptions) -> None:
        from stockade.sensors.scan.nmapxml import NmapXmlWriter, ScanRun
        from stockade.sensors.scan.nmapxml.tables import NMAP_XSL, mac_vendors, service_names

        path: str = args.xml_out
        if path == "-" and args.json:
            raise UsageError("-oX - and --json both write to standard output; give -oX a file")
        self.stream: TextIO = sys.stdout
        if path != "-":
            try:
                self.stream = open(path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise StockadeError(
                    f"-oX {path}: cannot write: {e.strerror}; name a file in a writable folder"
                ) from None
        run = ScanRun(
            args=shlex.join(["stockade", *getattr(args, "argv", [])]),
            start=time.time(),
            tcp=list(opts.tcp),
            udp=list(opts.udp),
            tcp_type="syn" if opts.use_syn else "connect",
            stylesheet=NMAP_XSL.as_uri() if NMAP_XSL.exists() else None,
        )
        self.writer: NmapXmlWriter = NmapXmlWriter(run, service_names(), mac_vendors())
        self._write(self.writer.header())

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def host(self, report: HostReport) -> None:
        self._write(self.writer.host(report))

    def close(self, error: str | None) -> None:
        self._write(self.writer.footer(time.time(), error))
        if self.stream is not sys.stdout:
            self.stream.close()


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
    """The banner's first line and the certificate's subject and expiry (and the upgrade it
    came after), shortened."""
    parts = []
    if p.service is not None:
        parts.append(p.service.describe())
    elif p.banner:
        line = p.banner.split("\n", 1)[0]
        parts.append(line if len(line) <= 48 else line[:47] + "…")
    if p.cert is not None:
        subject = p.cert.subject if len(p.cert.subject) <= 40 else p.cert.subject[:39] + "…"
        via = f", via {p.cert.tls_via}" if p.cert.tls_via else ""
        parts.append(f"[{subject}, expires {p.cert.not_after[:10]}{via}]")
    return " ".join(parts)


def print_host(report: HostReport) -> None:
    label = f"{report.address} ({report.name})" if report.name else report.address
    print(f"{label}: {report.state}, {len(report.ports)} ports in {report.elapsed:.2f} s")
    every = len(report.ports) <= 30
    shown = [p for p in report.ports if every or p.state == "open"]
    facts = any(p.banner or p.cert or p.service for p in shown)
    if shown and facts:
        rows = [[f"{p.port}/{p.proto}", p.state, _facts_cell(p)] for p in shown]
        table(rows, ["PORT", "STATE", "SERVICE"])
    elif shown:
        table([[f"{p.port}/{p.proto}", p.state] for p in shown], ["PORT", "STATE"])
    if not every:
        closed = sum(p.state == "closed" for p in report.ports)
        filtered = sum(p.state == "filtered" for p in report.ports)
        silent = sum(p.state == "open|filtered" for p in report.ports)
        extra = f", {silent} open|filtered" if silent else ""
        print(f"not shown: {closed} closed, {filtered} filtered{extra}")
    if report.path is not None:
        print("TRACEROUTE")
        table([_hop_row(h) for h in report.path], ["HOP", "RTT", "ADDRESS"])
    print()


def _hop_row(hop: Hop) -> list[str]:
    rtt = next((r for r in hop.rtts if r is not None), None)
    return [str(hop.ttl), "*" if rtt is None else f"{rtt * 1000:.2f} ms", hop.address or "*"]


def _intensity(args: argparse.Namespace) -> int:
    """--version-intensity, or what --version-light / --version-all say (as nmap's)."""
    if args.version_light and args.version_all:
        raise UsageError("--version-light and --version-all contradict each other; keep one")
    if args.version_light:
        return 2
    if args.version_all:
        return 9
    if not 0 <= args.version_intensity <= 9:
        raise UsageError(f"--version-intensity {args.version_intensity}: give 0 to 9")
    return int(args.version_intensity)
