"""``stockade sockets [list|check|accept]``: the socket table, and the listener baseline."""

from __future__ import annotations

import argparse
from typing import Any

from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.errors import UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sockets",
        help="the socket table and the listener baseline",
        parents=[common],
        description="list: TCP and UDP sockets as `ss -tuapn` shows them (the default); "
        "check: listeners against the baseline (exit 1 on a change); "
        "accept [ENDPOINT...]: take the current listeners as the baseline (with endpoints, "
        "as check names them — tcp/0.0.0.0:4444 — only what listens there).",
    )
    p.add_argument("action", nargs="?", default="list", choices=("list", "check", "accept"))
    p.add_argument("endpoints", nargs="*", metavar="ENDPOINT", help="accept: only these")
    p.add_argument("-l", "--listening", action="store_true", help="listening sockets only")
    p.add_argument("-t", "--tcp", action="store_true", help="TCP only")
    p.add_argument("-u", "--udp", action="store_true", help="UDP only")
    p.add_argument("--port", type=int, help="sockets with this local or remote port")
    p.add_argument("--program", help="sockets held by this program (its comm name)")
    p.add_argument("--state", help="sockets in this state (LISTEN, ESTAB, TIME-WAIT, ...)")
    p.add_argument("--netns", metavar="NAME", help="read this network namespace (ip netns)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=cmd_sockets)


def _proto(args: argparse.Namespace) -> str | None:
    if args.tcp and args.udp:
        return None
    return "tcp" if args.tcp else "udp" if args.udp else None


def _endpoint(addr: str, port: int, wildcard: bool) -> str:
    if wildcard and port == 0:
        return f"{addr if ':' not in addr else '[' + addr + ']'}:*"
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def cmd_sockets(args: argparse.Namespace) -> int:
    from stockade.sensors.sockets.table import enter_netns, read_sockets, select

    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError("--port must be 0-65535")
    ctx = make_context(args)
    if args.netns:
        enter_netns(args.netns)
    if args.endpoints and args.action != "accept":
        raise UsageError(
            f"unexpected argument {args.endpoints[0]!r}: endpoints go with `sockets accept`"
        )
    if args.action != "list":
        return _baseline(args, ctx)
    rows = select(
        read_sockets(),
        listening=args.listening,
        proto=_proto(args),
        port=args.port,
        program=args.program,
        state=args.state,
    )
    rows.sort(key=lambda s: (s.raw.proto, s.raw.state != "LISTEN", s.raw.local_port))
    if args.json:
        for s in rows:
            json_line(s.as_json())
        return 0
    table(
        [
            [
                s.raw.proto,
                s.raw.state,
                str(s.raw.recv_q),
                str(s.raw.send_q),
                _endpoint(s.raw.local_address, s.raw.local_port, False),
                _endpoint(s.raw.remote_address, s.raw.remote_port, True),
                s.user,
                ",".join(f"{o.program}/{o.pid}" for o in s.owners) or "-",
            ]
            for s in rows
        ],
        ["Proto", "State", "Recv-Q", "Send-Q", "Local", "Peer", "User", "Program/PID"],
    )
    return 0


def _baseline(args: argparse.Namespace, ctx: Any) -> int:
    from stockade.parts.sockets.service import SocketsService

    store = ctx.open_store()
    try:
        svc = SocketsService(ctx, store)
        if args.action == "accept":
            version, changes = svc.accept(
                note="accept (netns " + args.netns + ")" if args.netns else "accept",
                endpoints=args.endpoints,
            )
            if args.json:
                json_line({"version": version, "changes": changes})
            else:
                print(f"sockets: baseline version {version} ({changes} listener changes taken)")
            return 0
        result = svc.check()
        if result.version is None:
            raise UsageError("sockets: no listener baseline yet; run `stockade sockets accept`")
        for d in result.deltas:
            if args.json:
                json_line(
                    {
                        "kind": d.kind,
                        "subject": d.subject,
                        "message": d.describe(),
                        "old": d.old.text() if d.old else None,
                        "new": d.new.text() if d.new else None,
                    }
                )
            else:
                print(f"{d.kind:24} {d.describe()}")
        if not args.json and not result.deltas:
            print(f"sockets: no change against baseline version {result.version}")
        return 1 if result.deltas else 0
    finally:
        store.close()
