"""Walk the watched trees and yield what is found, without following symbolic links.

Every entry is reported with its ``lstat``; problems (a missing root, a folder that cannot be
listed, an entry that vanished, a mount point not crossed) are reported as notes rather than
raised, so a scan always finishes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from stockade.sensors.files.policy import Policy, Rule


class Found(NamedTuple):
    """An entry; ``st`` is None for a regular file, which the collector examines itself
    (``fstat`` on the descriptor it reads), so the walk spends no system call on it."""

    path: bytes
    st: os.stat_result | None
    rule: Rule


class Note(NamedTuple):
    path: bytes
    kind: str
    message: str


def walk(policy: Policy, rules: Iterable[Rule]) -> Iterator[Found | Note]:
    """Walk each rule's tree; a root nested in another rule's tree is walked with its own rule."""
    rules = list(rules)
    roots = {r.root for r in rules}
    for rule in rules:
        yield from _walk_one(policy, rule, roots - {rule.root})


def _walk_one(policy: Policy, rule: Rule, skip: set[bytes]) -> Iterator[Found | Note]:
    root = rule.root
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        yield Note(root, "missing", "watched path does not exist")
        return
    except OSError as e:
        yield Note(root, "unreadable", f"cannot examine the watched path: {e.strerror}")
        return
    yield Found(root, st, rule)
    if not stat.S_ISDIR(st.st_mode) or rule.depth == 0:
        return
    root_dev = st.st_dev
    limit = rule.depth
    one_fs = policy.one_filesystem
    excluded = policy.excluded
    stack: list[tuple[bytes, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            yield Note(folder, "vanished", "folder vanished during the scan")
            continue
        except OSError as e:
            yield Note(folder, "unreadable", f"cannot list the folder: {e.strerror}")
            continue
        with it:
            while True:
                try:
                    entry = next(it, None)
                except OSError as e:
                    yield Note(folder, "unreadable", f"listing stopped: {e.strerror}")
                    break
                if entry is None:
                    break
                path = entry.path
                if path in skip or excluded(path, rule):
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):  # from the folder listing: no stat
                        yield Found(path, None, rule)
                        continue
                    est = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    yield Note(path, "vanished", "vanished during the scan")
                    continue
                except OSError as e:
                    yield Note(path, "unreadable", f"cannot examine: {e.strerror}")
                    continue
                yield Found(path, est, rule)
                if not stat.S_ISDIR(est.st_mode):
                    continue
                if one_fs and est.st_dev != root_dev:
                    yield Note(
                        path,
                        "other-filesystem",
                        "another filesystem is mounted here; not descended (one_filesystem)",
                    )
                    continue
                if limit is None or depth + 1 < limit:
                    stack.append((path, depth + 1))
