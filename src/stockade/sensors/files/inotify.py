"""Realtime file events from inotify, for whole trees.

The kernel watches folders, not trees: every folder under a root gets its own watch, folders
created later are added as they appear (and their content reported, since files may land in
them before the watch exists), and a queue overflow is reported so the caller can rescan.
The descriptor is non-blocking; the daemon reads it from its event loop.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading

from inotify_simple import INotify, flags

from stockade.sensors.files.policy import Policy, Rule, contains

WATCH_MASK = (
    flags.ATTRIB
    | flags.CLOSE_WRITE
    | flags.MODIFY
    | flags.CREATE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.DONT_FOLLOW
    | flags.EXCL_UNLINK
    | flags.ONLYDIR
)


class TreeWatcher:
    """inotify watches on every folder of some trees."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._ino = INotify(nonblocking=True)
        self._paths: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.limit_reached = False

    def fileno(self) -> int:
        return int(self._ino.fileno())

    @property
    def count(self) -> int:
        return len(self._paths)

    def close(self) -> None:
        self._ino.close()

    def _add(self, folder: bytes) -> bool:
        try:
            wd = self._ino.add_watch(folder, WATCH_MASK)
        except OSError as e:
            if e.errno == 28:  # ENOSPC: fs.inotify.max_user_watches reached
                self.limit_reached = True
            return False
        with self._lock:
            self._paths[wd] = folder
        return True

    def watch_tree(self, rule: Rule, top: bytes | None = None) -> list[bytes]:
        """Watch every folder under ``top`` (default: the rule's root) within the rule.

        Returns the entries found below ``top``, so that a folder that appeared while
        nobody watched it can be examined. A root that is a file is watched through its
        folder, and so is a root that does not exist yet: its creation is then an event.
        """
        top = top or rule.root
        try:
            st = os.lstat(top)
        except OSError:
            if top == rule.root:
                self._add(os.path.dirname(top) or b"/")
            return []
        if not stat.S_ISDIR(st.st_mode):
            self._add(os.path.dirname(top) or b"/")
            return []
        found: list[bytes] = []
        root_dev = os.lstat(rule.root).st_dev if top != rule.root else st.st_dev
        base_depth = rule.root.rstrip(b"/").count(b"/")
        stack = [top]
        while stack:
            folder = stack.pop()
            if not self._add(folder):
                continue
            depth = folder.rstrip(b"/").count(b"/") - base_depth
            if rule.depth is not None and depth >= rule.depth:
                continue
            try:
                with os.scandir(folder) as it:
                    for e in it:
                        path = e.path
                        if self.policy.excluded(path, rule):
                            continue
                        found.append(path)
                        try:
                            if not e.is_dir(follow_symlinks=False):
                                continue
                            if (
                                self.policy.one_filesystem
                                and e.stat(follow_symlinks=False).st_dev != root_dev
                            ):
                                continue
                        except OSError:
                            continue
                        stack.append(path)
            except OSError:
                continue
        return found

    def read(self) -> tuple[set[bytes], list[bytes], bool]:
        """Drain pending events: (changed paths, new folders, overflowed)."""
        changed: set[bytes] = set()
        new_dirs: list[bytes] = []
        overflow = False
        for ev in self._ino.read(timeout=0):
            if ev.mask & flags.Q_OVERFLOW:
                overflow = True
                continue
            with self._lock:
                folder = self._paths.get(ev.wd)
                if ev.mask & flags.IGNORED:
                    self._paths.pop(ev.wd, None)
            if folder is None:
                continue
            path = folder + b"/" + os.fsencode(ev.name) if ev.name else folder
            changed.add(path)
            if ev.mask & flags.ISDIR and ev.mask & (flags.CREATE | flags.MOVED_TO):
                new_dirs.append(path)
            elif ev.mask & flags.ISDIR and ev.mask & flags.MOVED_FROM:
                self.forget_under(path)
        return changed, new_dirs, overflow

    def forget_under(self, top: bytes) -> None:
        """Remove the watches of a folder that moved away, and of everything below it."""
        with self._lock:
            gone = [wd for wd, p in self._paths.items() if contains(top, p)]
            for wd in gone:
                del self._paths[wd]
        for wd in gone:
            with contextlib.suppress(OSError):
                self._ino.rm_watch(wd)
