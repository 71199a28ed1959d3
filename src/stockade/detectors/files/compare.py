"""Compare a scan with the baseline: which entries were added, removed or changed, and how.

Pure functions over canonical entry texts (see :mod:`stockade.sensors.files.collect`): an
unchanged entry has byte-identical text, so the common case is one string comparison.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

MISSING: Any = None  # shown as "absent"

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class AttrChange:
    name: str
    old: Any
    new: Any


@dataclass(slots=True)
class Delta:
    """One entry that differs from the baseline."""

    path: bytes
    change: ChangeKind
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    attributes: tuple[AttrChange, ...] = field(default_factory=tuple)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.attributes)


def diff_entries(
    old: dict[str, Any], new: dict[str, Any], attrs: Iterable[str]
) -> tuple[AttrChange, ...]:
    """The attribute changes between two entries, limited to ``attrs``.

    When the type is the same, an attribute recorded on one side only is not a change: the
    policy differed, or the content could not be read (which is reported separately). When the
    type changed, every difference counts.
    """
    wanted = set(attrs)
    growing_only = "growing" in wanted and "size" not in wanted
    if growing_only:
        wanted.add("size")
    type_changed = old.get("type") != new.get("type")
    out = []
    for key in sorted(old.keys() | new.keys()):
        if key not in wanted:
            continue
        o = old.get(key, MISSING)
        n = new.get(key, MISSING)
        if o == n:
            continue
        if (key not in old or key not in new) and not type_changed:
            continue
        if key == "size" and growing_only and not type_changed and n >= o:
            continue
        out.append(AttrChange(key, o, n))
    return tuple(out)


def setuid(entry: dict[str, Any] | None) -> bool:
    """Whether an entry is a regular file with the setuid or setgid bit."""
    if not entry or entry.get("type") != "file":
        return False
    perms = entry.get("perms")
    return perms is not None and bool(int(perms, 8) & 0o6000)


def compare_entry(
    path: bytes,
    old_text: str | None,
    new_text: str | None,
    attrs: Iterable[str],
    setuid_attrs: Iterable[str] = (),
) -> Delta | None:
    """Delta for one path, or None when it is unchanged.

    ``setuid_attrs`` are compared as well when either side is a setuid or setgid file.
    """
    if old_text == new_text:
        return None
    if old_text is None:
        return Delta(path, "added", None, json.loads(new_text or "{}"))
    if new_text is None:
        return Delta(path, "removed", json.loads(old_text), None)
    old = json.loads(old_text)
    new = json.loads(new_text)
    if setuid(old) or setuid(new):
        attrs = set(attrs) | set(setuid_attrs)
    changes = diff_entries(old, new, attrs)
    if not changes:
        return None
    return Delta(path, "changed", old, new, changes)
