"""``stockade run``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from stockade.cli.main import make_context


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        help="run the daemon: every enabled part, until stopped",
        parents=[common],
        description="Run every enabled part on one event loop until SIGTERM or "
        "SIGINT; SIGHUP reloads the configuration.",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override stockade.log_level",
    )
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    ctx = make_context(args)
    level = (args.log_level or ctx.config.stockade.log_level).upper()
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("stockade")
    from stockade.sensors.files.policy import Policy

    Policy.from_config(ctx.config.files)  # fail early, with one line, on a bad policy
    ctx.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log.info("stockade %s starting", __import__("stockade").__version__)
    if ctx.loaded.path is None:
        log.info(
            "configuration: the bundled quick-start configuration (no %s); "
            "`stockade config show` prints it",
            args.config if getattr(args, "config", None) else "/etc/stockade/stockade.toml",
        )
    else:
        log.info("configuration: %s", ctx.loaded.path)
    log.info("state folder: %s; store: %s", ctx.state_dir, ctx.store_path)
    store = ctx.open_store()  # create and migrate the store before the parts start
    store.close()
    if os.geteuid() != 0:
        log.warning("not running as root: files that only root can read are not hashed")

    from stockade.daemon.runner import Daemon

    def reload() -> Any:
        return make_context(args)

    return asyncio.run(Daemon(ctx, reload).main())
