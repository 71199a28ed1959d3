"""A real Debian package, built with dpkg-deb in three versions and installed with dpkg."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tool

PKG = "stockade-testpkg"
LIB = Path(f"/usr/lib/{PKG}")
ETC = Path(f"/etc/{PKG}")
BIN = Path(f"/usr/bin/{PKG}")


def build(out: Path, version: str, tool: bytes, extra: bool) -> Path:
    root = out / f"{PKG}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / LIB.relative_to("/")).mkdir(parents=True)
    (root / ETC.relative_to("/")).mkdir(parents=True)
    (root / "bin").mkdir(parents=True)
    (root / LIB.relative_to("/") / "tool").write_bytes(tool)
    (root / LIB.relative_to("/") / "tool").chmod(0o755)
    (root / LIB.relative_to("/") / "data.txt").write_text("same in every version\n")
    if extra:
        (root / LIB.relative_to("/") / "plugin.so").write_bytes(b"plugin " + version.encode())
    # shipped in /bin: on a merged-/usr system it lands in /usr/bin and dpkg still says bin/...
    (root / "bin" / PKG).write_bytes(b"#!/bin/sh\necho " + version.encode() + b"\n")
    (root / "bin" / PKG).chmod(0o755)
    (root / ETC.relative_to("/") / "tool.conf").write_text(f"# config of {version}\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PKG}\nVersion: {version}\nArchitecture: all\nMaintainer: stockade tests "
        f"<root@localhost>\nDescription: test package for stockade\n"
    )
    (root / "DEBIAN" / "conffiles").write_text(f"{ETC}/tool.conf\n")
    deb = out / f"{PKG}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def dpkg(*args: str | Path) -> None:
    subprocess.run(
        ["dpkg", "--force-confnew", *map(str, args)],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


@pytest.fixture
def debs(tmp_path: Path) -> Iterator[dict[str, Path]]:
    need_root()
    need_tool("dpkg-deb")
    out = tmp_path / "debs"
    out.mkdir()
    debs = {
        "1.0": build(out, "1.0", b"\x7fELF tool version 1", extra=False),
        "2.0": build(out, "2.0", b"\x7fELF tool version 2 (bigger)", extra=True),
        "3.0": build(out, "3.0", b"\x7fELF tool version 3", extra=True),
    }
    dpkg("-i", debs["1.0"])
    try:
        yield debs
    finally:
        subprocess.run(["dpkg", "--purge", PKG], check=False, capture_output=True)


HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def dpkg_lock_held(admindir: Path = Path("/var/lib/dpkg")) -> Iterator[None]:
    """Another process holds dpkg's lock, as dpkg does while it works, inside the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(admindir / "lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.close()
        proc.wait(10)
