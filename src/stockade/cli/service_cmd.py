"""``stockade service install | uninstall``: the systemd unit."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from stockade.errors import StockadeError

UNIT = "stockade.service"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("service", help="install or remove the systemd unit", parents=[common])
    s = p.add_subparsers(dest="service_command", metavar="ACTION", parser_class=type(p))
    s.required = True
    i = s.add_parser("install", help=f"write {UNIT}, enable and start it", parents=[common])
    i.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"))
    i.add_argument("--no-start", action="store_true", help="write and enable only")
    i.set_defaults(handler=install)
    u = s.add_parser("uninstall", help=f"stop, disable and remove {UNIT}", parents=[common])
    u.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"))
    u.set_defaults(handler=uninstall)


def unit_text(executable: str, args: argparse.Namespace) -> str:
    template = resources.files("stockade.data").joinpath(UNIT).read_text("utf-8")
    extra = ""
    if getattr(args, "config", None):
        extra += f" --config {Path(args.config).resolve()}"
    if getattr(args, "state_dir", None):
        extra += f" --state-dir {Path(args.state_dir).resolve()}"
    return template.replace("@STOCKADE@", executable).replace("@ARGS@", extra)


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _systemctl(*args: str) -> None:
    r = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise StockadeError(f"systemctl {' '.join(args)} failed: {r.stderr.strip()}")


def install(args: argparse.Namespace) -> int:
    exe = shutil.which("stockade") or f"{sys.executable} -m stockade"
    target = args.unit_dir / UNIT
    try:
        args.unit_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(unit_text(exe, args), "utf-8")
    except OSError as e:
        raise StockadeError(f"{target}: cannot write the unit: {e.strerror}") from None
    print(f"wrote {target}")
    if args.unit_dir != Path("/etc/systemd/system") or not _systemd_running():
        print(
            "systemd is not managing this system (or another folder was chosen): "
            "enable it with `systemctl enable --now stockade` where systemd runs"
        )
        return 0
    _systemctl("daemon-reload")
    _systemctl("enable", UNIT) if args.no_start else _systemctl("enable", "--now", UNIT)
    print(f"{UNIT} enabled" + ("" if args.no_start else " and started"))
    return 0


def uninstall(args: argparse.Namespace) -> int:
    target = args.unit_dir / UNIT
    if _systemd_running() and args.unit_dir == Path("/etc/systemd/system"):
        subprocess.run(["systemctl", "disable", "--now", UNIT], check=False, capture_output=True)
    try:
        target.unlink()
    except FileNotFoundError:
        print(f"{target} is not installed")
        return 0
    print(f"removed {target}")
    return 0
