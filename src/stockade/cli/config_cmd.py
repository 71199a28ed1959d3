"""``stockade config check | show``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import tomli_w

from stockade.cli.main import make_context


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", help="validate or print the configuration", parents=[common])
    s = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    s.required = True
    c = s.add_parser("check", help="validate the configuration without running", parents=[common])
    c.set_defaults(handler=check)
    w = s.add_parser(
        "show", help="print the effective configuration, defaults filled in", parents=[common]
    )
    w.set_defaults(handler=show)


def check(args: argparse.Namespace) -> int:
    ctx = make_context(args)
    from stockade.sensors.files.policy import Policy

    Policy.from_config(ctx.config.files)  # checks that need more than the schema
    print(f"{ctx.loaded.source}: configuration is valid")
    return 0


def show(args: argparse.Namespace) -> int:
    ctx = make_context(args)
    data = ctx.config.model_dump(mode="json")
    sys.stdout.write(f"# effective configuration from {ctx.loaded.source}\n")
    sys.stdout.write(tomli_w.dumps(data))
    return 0
