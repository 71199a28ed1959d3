"""What Debian's package database says a file should contain.

dpkg keeps, for every installed package, ``info/<package>.md5sums`` (``<md5>  <path>`` for each
file it shipped, conffiles excepted) and, in ``status``, each package's ``Conffiles:`` with
their MD5s. Parsing is pure; :class:`DpkgManifest` reads the files when first asked, and again
whenever the database changed since (the ``info`` folder or ``status`` file has another time
stamp or size), so a long-running daemon judges each upgrade against what dpkg knows now.
:func:`dpkg_busy` says whether dpkg is at work (holds its lock): while it is, a file may
already carry the new version while the database still lists the old one.

On a merged-/usr system dpkg may list ``bin/ls`` while the file is reached as ``/usr/bin/ls``
(and the reverse); lookups try both spellings.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

_MD5 = re.compile(rb"^([0-9a-f]{32}) [ *](.+)$")
_MERGED = (b"bin", b"sbin", b"lib", b"lib32", b"lib64", b"libx32")


class Owner(NamedTuple):
    package: str
    md5: str
    conffile: bool


def parse_md5sums(data: bytes) -> Iterator[tuple[bytes, str]]:
    """Yield (absolute path, md5) from a ``.md5sums`` file; malformed lines are skipped."""
    for line in data.splitlines():
        m = _MD5.match(line)
        if m:
            yield b"/" + m.group(2).lstrip(b"/"), m.group(1).decode()


def parse_status_conffiles(data: bytes) -> Iterator[tuple[str, bytes, str]]:
    """Yield (package, path, md5) for every conffile in dpkg's ``status`` file."""
    package = ""
    in_conffiles = False
    for line in data.splitlines():
        if line.startswith(b"Package:"):
            package = line[8:].strip().decode("utf-8", "replace")
            in_conffiles = False
        elif line.startswith(b"Conffiles:"):
            in_conffiles = True
        elif in_conffiles and line.startswith(b" "):
            fields = line.split()
            if (
                len(fields) >= 2
                and re.fullmatch(rb"[0-9a-f]{32}", fields[1])
                and b"obsolete" not in fields[2:]
                and b"remove-on-upgrade" not in fields[2:]
            ):
                yield package, fields[0], fields[1].decode()
        else:
            in_conffiles = False


def aliases(path: bytes) -> list[bytes]:
    """The path and its merged-/usr twin, if it has one."""
    parts = path.split(b"/", 3)
    out = [path]
    if len(parts) > 2 and parts[1] == b"usr" and parts[2] in _MERGED:
        out.append(b"/" + path[5:])
    elif len(parts) > 1 and parts[1] in _MERGED:
        out.append(b"/usr" + path)
    return out


class DpkgManifest:
    """Lookup of a path's owning package and expected MD5, read lazily from ``admindir``."""

    def __init__(self, admindir: str | Path = "/var/lib/dpkg") -> None:
        self.admindir = Path(admindir)
        self._owners: dict[bytes, Owner] | None = None
        self._stamp: tuple[int, ...] | None = None

    def _current_stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for p in (self.admindir / "info", self.admindir / "status"):
            try:
                st = os.stat(p)
            except OSError:
                out += [-1, -1, -1]
            else:
                out += [st.st_mtime_ns, st.st_ctime_ns, st.st_size]
        return tuple(out)

    @property
    def available(self) -> bool:
        return (self.admindir / "info").is_dir()

    def _load(self) -> dict[bytes, Owner]:
        owners: dict[bytes, Owner] = {}
        info = self.admindir / "info"
        try:
            names = os.listdir(info)
        except OSError:
            names = []
        for name in names:
            if not name.endswith(".md5sums"):
                continue
            package = name[: -len(".md5sums")].split(":", 1)[0]
            try:
                data = (info / name).read_bytes()
            except OSError:
                continue
            for path, md5 in parse_md5sums(data):
                owners[path] = Owner(package, md5, False)
        try:
            status = (self.admindir / "status").read_bytes()
        except OSError:
            status = b""
        for package, path, md5 in parse_status_conffiles(status):
            owners[path] = Owner(package, md5, True)
        return owners

    def owner(self, path: bytes) -> Owner | None:
        stamp = self._current_stamp()
        if self._owners is None or stamp != self._stamp:
            self._stamp = stamp
            self._owners = self._load()
        for p in aliases(path):
            o = self._owners.get(p)
            if o is not None:
                return o
        return None


_F_GETLK = fcntl.F_GETLK
_FLOCK = struct.Struct("hhqqi")  # struct flock on Linux x86-64/arm64: type, whence, start, len, pid


def dpkg_busy(admindir: str | Path = "/var/lib/dpkg") -> bool:
    """Whether a process holds dpkg's database lock (``admindir/lock``) — asked with F_GETLK,
    so stockade never takes the lock itself and never blocks dpkg."""
    try:
        fd = os.open(Path(admindir) / "lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        got = fcntl.fcntl(fd, _F_GETLK, probe)
        return bool(_FLOCK.unpack(got[: _FLOCK.size])[0] != fcntl.F_UNLCK)
    except OSError:
        return False
    finally:
        os.close(fd)
