"""Entry point of the ``stockade`` command: parse arguments, dispatch, turn errors into one line.

Exit status: 0 success (for ``files check``: no change), 1 ``files check`` found changes,
2 bad input or any other error the user can fix, 3 an internal error (a bug: set
STOCKADE_DEBUG=1 for the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stockade import __version__
from stockade.errors import StockadeError

if TYPE_CHECKING:
    from stockade.context import Context

# not imported from stockade.config: the configuration's models are built only when needed
DEFAULT_CONFIG_PATH = Path("/etc/stockade/stockade.toml")
DEFAULT_STATE_DIR = Path("/var/lib/stockade")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line and status 2, as for every other bad input
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"configuration file (default {DEFAULT_CONFIG_PATH}; the bundled "
        "quick-start configuration when that does not exist)",
    )
    g.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"where the store and keys live (default {DEFAULT_STATE_DIR})",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    from stockade.cli import (
        alerts_cmd,
        bans_cmd,
        config_cmd,
        files_cmd,
        logs_cmd,
        notify_cmd,
        ping_cmd,
        run_cmd,
        scan_cmd,
        service_cmd,
        sockets_cmd,
        traceroute_cmd,
        web_cmd,
    )

    common = _common()
    parser = _Parser(
        prog="stockade",
        description="Host and network intrusion detection and prevention.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"stockade {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in (
        run_cmd,
        files_cmd,
        logs_cmd,
        bans_cmd,
        sockets_cmd,
        scan_cmd,
        ping_cmd,
        traceroute_cmd,
        web_cmd,
        alerts_cmd,
        notify_cmd,
        config_cmd,
        service_cmd,
    ):
        module.register(sub, common)
    return parser


def make_context(args: argparse.Namespace) -> Context:
    from stockade.config import load_config
    from stockade.context import Context

    explicit = getattr(args, "config", None)
    loaded = load_config(explicit or DEFAULT_CONFIG_PATH, explicit=explicit is not None)
    state = getattr(args, "state_dir", None) or Path(
        os.environ.get("STOCKADE_STATE_DIR") or DEFAULT_STATE_DIR
    )
    return Context(loaded, state)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # as given, for outputs that record the command line (scan -oX)
    try:
        return int(args.handler(args))
    except StockadeError as e:
        print(f"stockade: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stockade: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (stockade ... | head): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except Exception as e:  # a bug: one line, and the traceback on request
        if os.environ.get("STOCKADE_DEBUG"):
            traceback.print_exc()
        print(
            f"stockade: internal error: {type(e).__name__}: {e} "
            "(please report it; STOCKADE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
