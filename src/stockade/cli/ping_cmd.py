"""``stockade ping HOST [-c COUNT] [-i INTERVAL] [-W TIMEOUT] [-w DEADLINE] [-4|-6] [--json]``.

ICMP echo printed as iputils ping prints it (numeric: no reverse look-ups). Exit status as
ping's: 0 when a reply came (and, with both -c and -w, when COUNT replies came), 1 otherwise,
2 on bad input or when the host cannot be reached at all (no route, no name).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from typing import TYPE_CHECKING, Any

from stockade.cli.output import json_line
from stockade.errors import UsageError

if TYPE_CHECKING:
    from stockade.sensors.scan.ping import PingProblem, PingReply, PingSummary


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ping",
        help="ICMP echo: replies with TTL and RTT, and loss statistics, as ping prints them",
        parents=[common],
        description="Send ICMP echo requests to HOST, as ping does: "
        "stockade ping -c 3 -i 0.2 10.0.0.2",
    )
    p.add_argument("host", metavar="HOST", help="address or host name")
    p.add_argument("-c", dest="count", type=int, help="stop after COUNT requests")
    p.add_argument("-i", dest="interval", type=float, default=1.0, help="seconds between requests")
    p.add_argument(
        "-W", dest="timeout", type=float, default=10.0, help="seconds to wait for a reply"
    )
    p.add_argument("-w", dest="deadline", type=float, help="stop after DEADLINE seconds")
    family = p.add_mutually_exclusive_group()
    family.add_argument("-4", dest="v4", action="store_true", help="IPv4 only")
    family.add_argument("-6", dest="v6", action="store_true", help="IPv6 only")
    p.add_argument("--json", action="store_true", help="one JSON object at the end")
    p.set_defaults(handler=cmd_ping)


def resolve(host: str, v4: bool, v6: bool) -> str:
    """The address to ping: ``host`` itself when it is one, else its first address."""
    want = 6 if v6 else 4 if v4 else None
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        family = socket.AF_INET6 if v6 else socket.AF_INET if v4 else socket.AF_UNSPEC
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_RAW)
        except OSError:
            infos = []
        if not infos:
            raise UsageError(f"ping {host}: the name does not resolve; give an address") from None
        return str(infos[0][4][0])
    if want is not None and ip.version != want:
        raise UsageError(f"ping {host}: not an IPv{want} address; drop -{want}")
    return str(ip)


def cmd_ping(args: argparse.Namespace) -> int:
    from stockade.sensors.scan.ping import Pinger

    if args.count is not None and args.count < 1:
        raise UsageError("-c: COUNT must be 1 or more")
    if args.interval < 0.002:
        raise UsageError("-i: INTERVAL must be at least 0.002 seconds")
    if args.timeout <= 0 or (args.deadline is not None and args.deadline <= 0):
        raise UsageError("-W and -w: seconds must be more than 0")
    address = resolve(args.host, args.v4, args.v6)
    v6 = ":" in address
    with Pinger(address, interval=args.interval, timeout=args.timeout) as pinger:
        if not args.json:
            head = f"({address}) 56(84) bytes of data." if not v6 else f"({address}) 56 data bytes"
            print(f"PING {args.host}{'' if v6 else ' '}{head}", flush=True)
        events: list[PingReply | PingProblem] = []
        try:
            for event in pinger.run(args.count, args.deadline):
                events.append(event)
                if not args.json:
                    print(event_line(event), flush=True)
        except KeyboardInterrupt:
            pass  # as ping: Ctrl-C ends it with the statistics
        summary = pinger.summary
        if args.json:
            json_line(to_json(args.host, address, pinger.mode, events, summary))
        else:
            print()
            print("\n".join(summary_lines(args.host, summary)))
    if not summary.received:
        return 1
    if args.count is not None and args.deadline is not None and summary.received < args.count:
        return 1
    return 0


def rtt_text(ms: float) -> str:
    """An RTT as ping prints it: three significant decimals below 1 ms, fewer above."""
    if ms >= 99.95:
        return f"{ms:.0f}"
    if ms >= 9.995:
        return f"{ms:.1f}"
    if ms >= 0.9995:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def event_line(event: PingReply | PingProblem) -> str:
    from stockade.sensors.scan.ping import PingReply

    if isinstance(event, PingReply):
        ttl = "" if event.ttl is None else f" ttl={event.ttl}"
        return (
            f"{event.size} bytes from {event.source}: icmp_seq={event.seq}{ttl} "
            f"time={rtt_text(event.rtt * 1000)} ms"
        )
    if event.source:
        return f"From {event.source} icmp_seq={event.seq} {event.text}"
    return f"ping: {event.text} (icmp_seq={event.seq})"


def summary_lines(host: str, s: PingSummary) -> list[str]:
    counts = f"{s.transmitted} packets transmitted, {s.received} received"
    if s.duplicates:
        counts += f", +{s.duplicates} duplicates"
    if s.errors:
        counts += f", +{s.errors} errors"
    counts += f", {s.loss:g}% packet loss, time {round(s.elapsed * 1000)}ms"
    lines = [f"--- {host} ping statistics ---", counts]
    if s.stats is not None:
        low, avg, high, mdev = (f"{v * 1000:.3f}" for v in s.stats)
        lines.append(f"rtt min/avg/max/mdev = {low}/{avg}/{high}/{mdev} ms")
    return lines


def to_json(
    host: str,
    address: str,
    mode: str,
    events: list[PingReply | PingProblem],
    s: PingSummary,
) -> dict[str, Any]:
    from stockade.sensors.scan.ping import PingReply

    stats = s.stats
    return {
        "target": host,
        "address": address,
        "mode": mode,
        "replies": [
            {
                "seq": e.seq,
                "ttl": e.ttl,
                "rtt_ms": round(e.rtt * 1000, 3),
                "from": e.source,
                "bytes": e.size,
            }
            for e in events
            if isinstance(e, PingReply)
        ],
        "problems": [
            {"seq": e.seq, "from": e.source, "text": e.text}
            for e in events
            if not isinstance(e, PingReply)
        ],
        "transmitted": s.transmitted,
        "received": s.received,
        "duplicates": s.duplicates,
        "errors": s.errors,
        "loss": s.loss,
        "time_ms": round(s.elapsed * 1000),
        "rtt_ms": None
        if stats is None
        else dict(
            zip(("min", "avg", "max", "mdev"), (round(v * 1000, 3) for v in stats), strict=True)
        ),
    }
