"""``stockade traceroute HOST [-I] [-m MAX_TTL] [-q NQUERIES] [-w WAIT] [-p PORT] [-f FIRST_TTL]
[-N SQUERIES] [-6] [--json]``: the path to a host, printed as ``traceroute -n`` prints it.

UDP probes to port 33434 and up by default, ICMP echo requests with ``-I``; numeric output (no
DNS look-ups of the hops). ``--json`` prints one object: the target, its address, the probe
protocol, whether the destination answered and the hops.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from typing import TYPE_CHECKING, Any

from stockade.cli.output import json_line
from stockade.errors import StockadeError, UsageError

if TYPE_CHECKING:
    from stockade.sensors.scan.report import Hop


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "traceroute",
        help="the routers on the way to a host (UDP or ICMP probes)",
        parents=[common],
        description="Trace the path to HOST with traceroute's flags: "
        "stockade traceroute 10.0.3.2 -I -q 1",
    )
    p.add_argument("host", metavar="HOST", help="address or name")
    p.add_argument("-I", "--icmp", action="store_true", help="ICMP echo probes (default UDP)")
    p.add_argument("-m", dest="max_ttl", type=int, default=30, help="max TTL (default 30)")
    p.add_argument("-f", dest="first_ttl", type=int, default=1, help="first TTL (default 1)")
    p.add_argument(
        "-q", dest="queries", metavar="NQUERIES", type=int, default=3, help="probes per hop (3)"
    )
    p.add_argument("-w", dest="wait", type=float, default=5.0, help="seconds a probe waits (5)")
    p.add_argument(
        "-p", dest="port", type=int, default=0, help="UDP: first port (33434); -I: first sequence"
    )
    p.add_argument(
        "-N",
        dest="inflight",
        metavar="SQUERIES",
        type=int,
        default=16,
        help="probes in flight (16)",
    )
    p.add_argument("-6", dest="ipv6", action="store_true", help="resolve HOST to IPv6")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=cmd_traceroute)


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.max_ttl <= 255:
        raise UsageError(f"-m {args.max_ttl}: the max TTL is 1-255")
    if not 1 <= args.first_ttl <= args.max_ttl:
        raise UsageError(f"-f {args.first_ttl}: the first TTL is 1 to the max TTL ({args.max_ttl})")
    if not 1 <= args.queries <= 10:
        raise UsageError(f"-q {args.queries}: probes per hop are 1-10")
    if not 0 < args.wait <= 60:  # also false for NaN
        raise UsageError(f"-w {args.wait}: the wait is more than 0 and at most 60 seconds")
    if not 1 <= args.inflight <= 128:
        raise UsageError(f"-N {args.inflight}: probes in flight are 1-128")
    probes = (args.max_ttl - args.first_ttl + 1) * args.queries
    if args.icmp and not 0 <= args.port <= 65535:
        raise UsageError(f"-p {args.port}: with -I it is the first sequence number, 0-65535")
    if not args.icmp and not 0 <= args.port <= 65536 - probes:
        raise UsageError(
            f"-p {args.port}: the {probes} UDP probes use ports from this one upward; "
            f"give a first port of 1-{65536 - probes}"
        )


def resolve(host: str, ipv6: bool) -> str:
    """The address to trace: ``host`` itself when it is one, else its first IPv4 address (or
    IPv6 with ``ipv6`` or when it has no IPv4 one)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if ipv6 and literal.version == 4:
            raise UsageError(f"-6: {host} is an IPv4 address; leave out -6 or give an IPv6 one")
        return str(literal)
    family = socket.AF_INET6 if ipv6 else socket.AF_UNSPEC
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise StockadeError(
            f"{host!r}: cannot resolve ({why}); give an address or a name"
        ) from None
    found = [(i[0], str(i[4][0])) for i in infos]
    for want in (socket.AF_INET, socket.AF_INET6):
        for fam, addr in found:
            if fam == want:
                return addr
    raise StockadeError(f"{host!r}: no IPv4 or IPv6 address; give an address")


def packet_size(address: str) -> int:
    """The size traceroute reports: IP header, UDP or ICMP header (8 bytes each), payload."""
    from stockade.sensors.scan.traceroute import PAYLOAD

    return (40 if ":" in address else 20) + 8 + len(PAYLOAD)


def format_hop(hop: Hop) -> str:
    """One line as ``traceroute -n`` prints it: `` 2  10.0.2.1  0.061 ms  * 0.043 ms !H``."""
    out = [f"{hop.ttl:2d} "]
    shown: str | None = None
    for i, rtt in enumerate(hop.rtts):
        who = hop.responders[i] if i < len(hop.responders) else hop.address
        if rtt is None:
            out.append(" *")
            continue
        if who is not None and who != shown:
            out.append(f" {who}")
            shown = who
        out.append(f"  {rtt * 1000:.3f} ms")
        mark = hop.marks[i] if i < len(hop.marks) else ""
        if mark:
            out.append(f" {mark}")
    return "".join(out)


def cmd_traceroute(args: argparse.Namespace) -> int:
    from stockade.sensors.scan.traceroute import TraceOptions, check_route, trace

    _check(args)
    address = resolve(args.host, args.ipv6)
    check_route(address)  # before the heading, as traceroute does
    opts = TraceOptions(
        icmp=args.icmp,
        first_ttl=args.first_ttl,
        max_ttl=args.max_ttl,
        queries=args.queries,
        wait=args.wait,
        port=args.port,
        inflight=args.inflight,
    )
    if args.json:
        hops = trace(address, opts)
        reached = bool(hops) and address in [*hops[-1].responders, hops[-1].address]
        json_line(
            {
                "target": args.host,
                "address": address,
                "protocol": "icmp" if args.icmp else "udp",
                "reached": reached,
                "path": [h.to_json() for h in hops],
            }
        )
        return 0
    size = packet_size(address)
    print(
        f"traceroute to {args.host} ({address}), {args.max_ttl} hops max, {size} byte packets",
        flush=True,
    )
    trace(address, opts, on_hop=lambda hop: print(format_hop(hop), flush=True))
    return 0
