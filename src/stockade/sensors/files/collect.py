"""Collect one file's attributes into its canonical baseline entry.

This module runs inside the hashing worker processes, so it imports nothing heavy. A regular
file is opened once (``O_NOFOLLOW | O_NONBLOCK | O_NOATIME``), and everything is read through
that descriptor — ``fstat``, content and extended attributes — so a file swapped between the
walk and the read cannot mix two files' attributes. Content is streamed through a fixed buffer:
memory does not grow with file size. Other file types are never opened.

An entry is a JSON object with sorted keys and no spaces, so two scans of an unchanged file give
byte-identical text; comparing and signing work on that text.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable
from typing import Any, NamedTuple

from stockade.sensors.files.acl import acl_text
from stockade.sensors.files.attributes import BITS, BUILTIN_SETS, mask_of

TYPE_NAMES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
}
ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"
SELINUX = "security.selinux"
CAPABILITY = "security.capability"
_SPECIAL_XATTRS = (ACL_ACCESS, ACL_DEFAULT, SELINUX)

B = BITS
_HASH_BITS = B["sha256"] | B["sha512"] | B["blake3"]
_XATTR_BITS = B["xattrs"] | B["acl"] | B["selinux"]
#: Attributes always recorded for setuid and setgid files, whatever their rule says.
SETUID_ATTRS = BUILTIN_SETS["binaries"]
SETUID_MASK = mask_of(SETUID_ATTRS)
_BUF_SIZE = 1 << 20
_buffer: bytearray | None = None
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Collected(NamedTuple):
    """One path's result: its entry (canonical JSON) and/or a note about it."""

    path: bytes
    entry: str | None
    note: str | None = None
    message: str | None = None
    hashed: int = 0


def encode(entry: dict[str, Any]) -> str:
    """Canonical JSON text of an entry."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def _hashers(mask: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mask & B["sha256"]:
        out["sha256"] = hashlib.sha256()
    if mask & B["sha512"]:
        out["sha512"] = hashlib.sha512()
    if mask & B["blake3"]:
        import blake3

        out["blake3"] = blake3.blake3()
    return out


def hash_fd(fd: int, mask: int) -> tuple[dict[str, str], int]:
    """Stream ``fd`` through the hashes named in ``mask``; return hex digests and bytes read."""
    global _buffer  # noqa: PLW0603 - one reusable buffer per worker process
    if _buffer is None:
        _buffer = bytearray(_BUF_SIZE)
    buf = _buffer
    view = memoryview(buf)
    hashers = _hashers(mask)
    updates: list[Callable[[Any], None]] = [h.update for h in hashers.values()]
    total = 0
    while True:
        n = os.readv(fd, [buf])
        if not n:
            break
        total += n
        chunk = view[:n] if n < _BUF_SIZE else view
        for update in updates:
            update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}, total


def file_md5(path: bytes) -> str | None:
    """MD5 of a file's content (dpkg's manifests use it); None when it cannot be read."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.md5(usedforsecurity=False)
        while chunk := os.read(fd, _BUF_SIZE):
            h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def read_xattrs(target: int | bytes) -> dict[str, bytes]:
    """All extended attributes of an open descriptor or of a path (links not followed)."""
    try:
        if isinstance(target, int):
            names = os.listxattr(target)
            return {n: os.getxattr(target, n) for n in names}
        names = os.listxattr(target, follow_symlinks=False)
        return {n: os.getxattr(target, n, follow_symlinks=False) for n in names}
    except OSError:
        return {}


def _xattr_value(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + raw.hex()
    if text.isprintable():
        return text
    return "hex:" + raw.hex()


def build_entry(
    st: os.stat_result,
    mask: int,
    *,
    link: bytes | None = None,
    xattrs: dict[str, bytes] | None = None,
    hashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The entry of a file with status ``st``; only the attributes in ``mask`` are kept.

    Directories leave out size, times and link count: they change whenever an entry is added
    or removed, and the added or removed entry is reported on its own.
    """
    fmt = stat.S_IFMT(st.st_mode)
    e: dict[str, Any] = {"type": TYPE_NAMES.get(fmt, f"unknown-{fmt:o}")}
    is_dir = fmt == stat.S_IFDIR
    if mask & B["perms"]:
        e["perms"] = f"{stat.S_IMODE(st.st_mode):04o}"
    if mask & B["uid"]:
        e["uid"] = st.st_uid
    if mask & B["gid"]:
        e["gid"] = st.st_gid
    if mask & (B["size"] | B["growing"]) and not is_dir:
        e["size"] = st.st_size
    if mask & B["mtime"] and not is_dir:
        e["mtime"] = st.st_mtime_ns
    if mask & B["ctime"] and not is_dir:
        e["ctime"] = st.st_ctime_ns
    if mask & B["inode"]:
        e["inode"] = st.st_ino
    if mask & B["nlink"] and not is_dir:
        e["nlink"] = st.st_nlink
    if mask & B["link"] and link is not None:
        e["link"] = os.fsdecode(link)
    if mask & B["dev"] and fmt in (stat.S_IFCHR, stat.S_IFBLK):
        e["dev"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if hashes:
        e.update(hashes)
    if mask & _XATTR_BITS:
        xa = xattrs or {}
        if mask & B["xattrs"]:
            e["xattrs"] = {
                k: _xattr_value(v) for k, v in sorted(xa.items()) if k not in _SPECIAL_XATTRS
            }
        if mask & B["acl"]:
            acl = acl_text(xa[ACL_ACCESS]) if ACL_ACCESS in xa else ""
            if ACL_DEFAULT in xa:
                acl += (" " if acl else "") + "default:" + acl_text(xa[ACL_DEFAULT])
            e["acl"] = acl
        if mask & B["selinux"]:
            e["selinux"] = xa.get(SELINUX, b"").rstrip(b"\0").decode("utf-8", "replace")
    return e


def collect_other(path: bytes, st: os.stat_result, mask: int) -> Collected:
    """Entry of a non-regular file from its ``lstat``; never opens it."""
    link = None
    note = message = None
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFLNK:
        try:
            link = os.readlink(path)
        except OSError as e:
            return _gone(path, e)
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                note, message = "symlink-loop", "symbolic link loop; recorded, never followed"
    elif fmt in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        note = "not-read"
        message = f"{TYPE_NAMES[fmt]}: attributes recorded, never opened for reading"
    xattrs = read_xattrs(path) if mask & _XATTR_BITS else None
    return Collected(path, encode(build_entry(st, mask, link=link, xattrs=xattrs)), note, message)


def _gone(path: bytes, err: OSError) -> Collected:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return Collected(path, None, "vanished", "vanished during the scan")
    return Collected(path, None, "unreadable", f"cannot read: {err.strerror}")


def _open(path: bytes) -> int:
    try:
        return os.open(path, _OPEN_FLAGS | os.O_NOATIME)
    except PermissionError:
        # O_NOATIME needs ownership or CAP_FOWNER; try again without it
        return os.open(path, _OPEN_FLAGS)


def collect_regular(path: bytes, mask: int) -> Collected:
    """Entry of a regular file, everything read through one descriptor."""
    try:
        fd = _open(path)
    except OSError as e:
        if e.errno == errno.ELOOP:  # replaced by a symbolic link since the walk
            return _relstat(path, mask)
        if e.errno in (errno.EACCES, errno.EPERM):
            return _unreadable(path, mask, e)
        return _gone(path, e)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _relstat(path, mask)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            mask |= SETUID_MASK
        hashes: dict[str, str] = {}
        nbytes = 0
        if mask & _HASH_BITS:
            try:
                hashes, nbytes = hash_fd(fd, mask)
            except OSError as e:
                return _unreadable(path, mask, e)
        xattrs = read_xattrs(fd) if mask & _XATTR_BITS else None
        return Collected(
            path, encode(build_entry(st, mask, xattrs=xattrs, hashes=hashes)), hashed=nbytes
        )
    finally:
        os.close(fd)


def _relstat(path: bytes, mask: int) -> Collected:
    try:
        st = os.lstat(path)
    except OSError as e:
        return _gone(path, e)
    if stat.S_ISREG(st.st_mode):
        return Collected(path, None, "vanished", "changed type repeatedly during the scan")
    return collect_other(path, st, mask)


def _unreadable(path: bytes, mask: int, err: OSError) -> Collected:
    """Attributes without content hashes, and a note saying why."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return _gone(path, e)
    xattrs = read_xattrs(path) if mask & _XATTR_BITS else None
    entry = encode(build_entry(st, mask, xattrs=xattrs))
    return Collected(path, entry, "unreadable", f"content not hashed: {err.strerror}")


def collect(path: bytes, st: os.stat_result, mask: int) -> Collected:
    """Entry of any file given its ``lstat``."""
    if stat.S_ISREG(st.st_mode):
        return collect_regular(path, mask)
    return collect_other(path, st, mask)


def collect_path(path: bytes, mask: int) -> Collected:
    """Entry of a path, starting from ``lstat`` (used by the realtime watcher)."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return _gone(path, e)
    return collect(path, st, mask)


def collect_batch(batch: list[tuple[bytes, int]]) -> list[Collected]:
    """Worker entry point: collect a batch of regular files."""
    return [collect_regular(path, mask) for path, mask in batch]
