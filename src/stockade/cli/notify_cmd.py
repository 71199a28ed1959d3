"""``stockade notify queue [--all] [--json]`` and ``stockade notify test CHANNEL``."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from stockade.cli.main import make_context
from stockade.cli.output import json_line, table
from stockade.durations import iso
from stockade.errors import StockadeError, UsageError
from stockade.model import Alert, Severity
from stockade.store.base import OutboxItem


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("notify", help="the notification outbox; a test message", parents=[common])
    s = p.add_subparsers(dest="notify_command", metavar="ACTION", parser_class=type(p))
    s.required = True
    q = s.add_parser(
        "queue", parents=[common], help="notifications not delivered yet (--all: sent ones too)"
    )
    q.add_argument("--all", action="store_true", help="delivered notifications too")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(handler=cmd_queue)
    t = s.add_parser("test", parents=[common], help="send a test message through a channel now")
    t.add_argument("channel", metavar="CHANNEL", help="a name from notify.channels")
    t.set_defaults(handler=cmd_test)


def item_json(i: OutboxItem) -> dict[str, Any]:
    return {
        "id": i.id,
        "channel": i.channel,
        "alert": i.alert.id,
        "alert_kind": f"{i.alert.part}/{i.alert.kind}",
        "subject": i.alert.subject,
        "routed": iso(i.created),
        "attempts": i.attempts,
        "next_try": None if i.sent is not None else iso(i.next_try),
        "sent": None if i.sent is None else iso(i.sent),
        "last_error": i.last_error,
    }


def cmd_queue(args: argparse.Namespace) -> int:
    ctx = make_context(args)
    items: list[OutboxItem] = []
    if ctx.store_path.exists():
        store = ctx.open_store()
        try:
            items = store.list_notifications(pending=not args.all)
        finally:
            store.close()
    if args.json:
        for i in items:
            json_line(item_json(i))
        return 0
    if not items:
        print("the outbox is empty" if args.all else "nothing waits to be delivered")
        return 0
    rows = []
    for i in items:
        state = f"sent {iso(i.sent)}" if i.sent is not None else f"next {iso(i.next_try)}"
        rows.append(
            [
                str(i.id),
                i.channel,
                str(i.alert.id),
                f"{i.alert.part}/{i.alert.kind}",
                str(i.attempts),
                state,
                i.last_error or "-",
            ]
        )
    table(rows, ["ID", "CHANNEL", "ALERT", "KIND", "ATTEMPTS", "STATE", "LAST ERROR"])
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from stockade.responders.notify.channels import make_channel
    from stockade.responders.notify.channels.base import DeliveryError
    from stockade.responders.notify.message import build

    ctx = make_context(args)
    channels = {c.name: c for c in ctx.config.notify.channels}
    cfg = channels.get(args.channel)
    if cfg is None:
        known = ", ".join(channels) or "none is configured"
        raise UsageError(f"notify test: no channel {args.channel!r} in notify.channels ({known})")
    alert = Alert(
        part="notify",
        kind="test",
        subject=cfg.name,
        severity=Severity.INFO,
        detail={"message": f"stockade test message for channel {cfg.name}"},
        host=ctx.host,
        time=time.time(),
        id=0,
    )
    try:
        asyncio.run(make_channel(cfg, ctx.host).send(build([alert], ctx.host)))
    except DeliveryError as e:
        raise StockadeError(f"notify test {cfg.name}: not delivered: {e}") from None
    print(f"sent a test message through {cfg.name} ({cfg.type})")
    return 0
