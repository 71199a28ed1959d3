"""How file attributes and changes are shown to people."""

from __future__ import annotations

import grp
import pwd
import stat
from typing import Any

from stockade.detectors.files.compare import Delta
from stockade.durations import iso_ns
from stockade.parts.files.report import Finding, show_path


def _user(uid: int) -> str:
    try:
        return f"{uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return f"{gid} ({grp.getgrgid(gid).gr_name})"
    except KeyError:
        return str(gid)


_TYPE_CHAR = {
    "file": "-",
    "dir": "d",
    "symlink": "l",
    "fifo": "p",
    "socket": "s",
    "chardev": "c",
    "blockdev": "b",
}


def _perms(value: str, ftype: str | None) -> str:
    mode = int(value, 8)
    text = stat.filemode(mode)[1:]
    return f"{_TYPE_CHAR.get(ftype or '', '?')}{text} ({value})"


def value(name: str, v: Any, ftype: str | None = None) -> str:
    if v is None:
        return "absent"
    if name == "perms":
        return _perms(v, ftype)
    if name == "uid":
        return _user(v)
    if name == "gid":
        return _group(v)
    if name in ("mtime", "ctime"):
        return iso_ns(v)
    if name == "xattrs":
        return ", ".join(f"{k}={x}" for k, x in v.items()) or "none"
    if name in ("acl", "selinux"):
        return v or "none"
    return str(v)


def attribute_lines(d: Delta) -> list[str]:
    old_type = (d.old or {}).get("type")
    new_type = (d.new or {}).get("type")
    width = max((len(a.name) for a in d.attributes), default=0)
    return [
        f"    {a.name.ljust(width)}  {value(a.name, a.old, old_type)}"
        f"  →  {value(a.name, a.new, new_type)}"
        for a in d.attributes
    ]


def finding_lines(f: Finding) -> list[str]:
    v = f.verdict
    pkg = f" ({v.package})" if v.package else ""
    why = f"[{v.classification}{pkg}: {v.reason}]"
    head = f"{f.delta.change.upper():8} {v.severity!s:8} {show_path(f.path)}  {why}"
    lines = [head]
    if f.delta.change == "changed":
        lines += attribute_lines(f.delta)
    return lines


def entry_lines(entry: dict[str, Any]) -> list[str]:
    ftype = entry.get("type")
    width = max(len(k) for k in entry)
    return [f"  {k.ljust(width)}  {value(k, v, ftype)}" for k, v in sorted(entry.items())]
