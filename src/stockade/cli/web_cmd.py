"""``stockade web [serve] [--listen ADDR:PORT]`` serves the dashboard of a state folder;
``stockade web passwd USER [--role viewer|admin]`` creates a dashboard user or changes its
password; ``stockade web role USER viewer|admin`` changes a user's role; ``stockade web users``
lists the users with their roles and ``stockade web deluser USER`` removes one (and its
sessions). The last admin can be neither demoted nor removed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
import time
from typing import Any

from stockade.cli.main import make_context
from stockade.errors import UsageError
from stockade.model import ROLES

_ROLES = " or ".join(ROLES)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "web",
        help="the web dashboard, and its users",
        parents=[common],
        description="serve (the default): serve the dashboard of the state folder on "
        "--listen (default web.listen, 127.0.0.1:8470) until interrupted; "
        "passwd USER: create USER or change its password (read from the terminal, or "
        "the first line of standard input when that is not a terminal); a new user is an "
        "admin when it is the first user, else a viewer, unless --role says otherwise; "
        "role USER viewer|admin: change the role of USER (its sessions end); "
        "users: list the users and their roles; deluser USER: remove USER and end its "
        "sessions. The last admin can be neither demoted nor removed.",
    )
    p.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=("serve", "passwd", "role", "users", "deluser"),
    )
    p.add_argument("user", nargs="?", help="the user of passwd, role or deluser")
    p.add_argument("role", nargs="?", metavar="ROLE", help="the new role of `role`: " + _ROLES)
    p.add_argument("--listen", metavar="ADDR:PORT", help="address and port to serve on")
    p.add_argument(
        "--role",
        dest="new_role",
        choices=ROLES,
        help="passwd: the role of the user (a new user's default: admin if it is the first "
        "user, else viewer)",
    )
    p.set_defaults(handler=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    if args.new_role and args.action != "passwd":
        raise UsageError("--role belongs to `stockade web passwd USER --role ROLE`")
    if args.action == "role":
        return _role(args)
    if args.role:
        raise UsageError(
            f"unexpected argument {args.role!r}; did you mean `stockade web role USER ROLE`?"
        )
    if args.action == "passwd":
        return _passwd(args)
    if args.action == "deluser":
        return _deluser(args)
    if args.user:
        raise UsageError(
            f"unexpected argument {args.user!r}; did you mean `stockade web passwd` or "
            "`stockade web deluser`?"
        )
    if args.action == "users":
        return _users(args)
    return _serve(args)


def _users(args: argparse.Namespace) -> int:
    store = make_context(args).open_store()
    try:
        users = store.web_users()
    finally:
        store.close()
    width = max((len(u.name) for u in users), default=0)
    for u in users:
        print(f"{u.name:<{width}}  {u.role}")
    if not users:
        print("no dashboard user (create one with `stockade web passwd USER`)", file=sys.stderr)
    return 0


def _deluser(args: argparse.Namespace) -> int:
    if not args.user:
        raise UsageError("stockade web deluser USER: which user? (`stockade web users` lists them)")
    store = make_context(args).open_store()
    try:
        if args.user not in store.list_web_users():
            raise UsageError(
                f"stockade web deluser: no dashboard user {args.user!r} "
                "(`stockade web users` lists them); nothing changed"
            )
        store.delete_web_user(args.user)
        left = len(store.list_web_users())
    finally:
        store.close()
    print(f"removed dashboard user {args.user} and ended its sessions ({left} user(s) left)")
    return 0


def _role(args: argparse.Namespace) -> int:
    if not args.user or not args.role:
        raise UsageError(
            f"stockade web role USER ROLE: which user and which role ({_ROLES})? "
            "(`stockade web users` lists the users)"
        )
    if args.role not in ROLES:
        raise UsageError(f"stockade web role: unknown role {args.role!r}; use {_ROLES}")
    store = make_context(args).open_store()
    try:
        before = store.web_user(args.user)
        if before is None or not store.set_web_user_role(args.user, args.role):
            raise UsageError(
                f"stockade web role: no dashboard user {args.user!r} "
                "(`stockade web users` lists them); nothing changed"
            )
    finally:
        store.close()
    print(f"dashboard user {args.user}: {before.role} -> {args.role}; its sessions have ended")
    return 0


def _read_password(user: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"new password for {user}: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ; nothing changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _passwd(args: argparse.Namespace) -> int:
    from stockade.web.auth import hash_password, valid_user_name

    user = args.user or ""
    if not valid_user_name(user):
        raise UsageError(
            f"stockade web passwd USER: USER must be 1-64 letters, digits or ._-@ (got {user!r})"
        )
    ctx = make_context(args)
    password = _read_password(user)
    if len(password) < 8:
        raise UsageError("the password must have at least 8 characters; nothing changed")
    store = ctx.open_store()
    try:
        created = store.set_web_user(
            user, hash_password(password), when=time.time(), role=args.new_role
        )
        now = store.web_user(user)
    finally:
        store.close()
    role = now.role if now else "?"
    print(f"{'created' if created else 'changed the password of'} dashboard user {user} ({role})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from stockade.web.listen import parse_listen
    from stockade.web.server import build_server, serve

    ctx = make_context(args)
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as e:
            raise UsageError(f"--listen: {e}") from None
    store = ctx.open_store()
    try:
        users = store.list_web_users()
    finally:
        store.close()
    if not users:
        raise UsageError(
            "no dashboard user yet: create one with `stockade web passwd USER`, then start again"
        )
    logging.basicConfig(level=logging.INFO, format="stockade: %(message)s")
    server, sock = build_server(ctx, args.listen)
    host, port = sock.getsockname()[:2]
    scheme = "https" if ctx.config.web.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"stockade: dashboard on {scheme}://{shown}:{port}/ (Ctrl-C stops)", flush=True)

    async def main() -> None:
        import signal

        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await serve(server, sock)

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main())
    return 0
