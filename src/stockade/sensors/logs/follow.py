"""Follow log files through rotation, truncation and restarts, losing and repeating no line.

inotify watches the folders of the patterns (not the files), so every way a log is rotated is
seen: renamed away and created again, copied and truncated, truncated in place, deleted and
created again. The core is synchronous: :meth:`FileFollower.read_available` drains the inotify
events and reads whatever can be read; the caller handles the lines and then calls
:meth:`FileFollower.commit`, which stores one position per followed path (the file's identity
and the offset just after the last line returned). A restart resumes exactly there:

- the file at the path is the one recorded: from the recorded offset;
- the recorded file was rotated away (``auth.log.1``, found in the folder by device, inode and
  first bytes; or compressed, found by its decompressed first bytes when compressed files are
  read): the rest of it first, then the new file from its start;
- the recorded file is gone: the new file from its start;
- a path never seen before: from its end (fail2ban's "tail"), or its start with ``from_start``.

A file renamed away is read to its end before the new one, and followed until the new file
gets its first bytes (a daemon writes to the old file until it reopens its log). A file that
moves to another followed path (``auth.log.1`` under ``/var/log/auth.log*``) is handed over at
its position, so it is not read twice. Compressed rotated files (.gz, .bz2, .xz, .zst) are
ignored unless ``read_compressed``; then each is read once, decompressed, from where its
content was already read (none of it if its uncompressed original was read to the end).
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import errno
import glob
import gzip
import logging
import lzma
import os
import shutil
import stat
import subprocess
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from inotify_simple import INotify, flags

from stockade.daemon.tasks import spawn
from stockade.sensors.logs.lines import DEFAULT_MAX_LINE, LineSplitter, LogLine, decode
from stockade.sensors.logs.position import HEAD_SIZE, Identity, Position

__all__ = ["COMPRESSED_SUFFIXES", "FileFollower", "LogLine", "StateStore", "wait_any"]

log = logging.getLogger("stockade")

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
CHUNK = 1 << 16
BATCH_BYTES = 8 << 20  # follow(): bytes read before a batch is handed on
UNLIMITED = 1 << 62
MEMORY = 4096  # identities remembered after their file was closed, to recognise them again

FOLDER_MASK = (
    flags.MODIFY
    | flags.CLOSE_WRITE
    | flags.CREATE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
)
# a folder that should exist and does not yet, or a folder glob's parent: wait for creations
ANCESTOR_MASK = (
    flags.CREATE
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
    | flags.MASK_ADD
)
NAMES_CHANGED = (
    flags.CREATE
    | flags.DELETE
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.IGNORED
    | flags.Q_OVERFLOW
)
DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


class StateStore(Protocol):
    """The part of the store a follower needs (``Store`` has exactly these methods)."""

    def get_state(self, key: str) -> str | None: ...
    def set_state(self, key: str, value: str) -> None: ...


async def wait_any(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [spawn(e.wait(), name="wait-event") for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def _stat_regular(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _open_regular(path: str) -> tuple[int, os.stat_result, bytes] | None:
    """An open descriptor, its stat and its first bytes; None if not a readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            return fd, st, os.pread(fd, HEAD_SIZE, 0)
    except OSError:
        pass
    os.close(fd)
    return None


def _tail_offset(fd: int, size: int) -> int:
    """Where "from the end" starts: after the last complete line (a partial one is read whole)."""
    n = min(size, CHUNK)
    try:
        tail = os.pread(fd, n, size - n)
    except OSError:
        return size
    nl = tail.rfind(b"\n")
    if nl >= 0:
        return size - len(tail) + nl + 1
    return 0 if size <= CHUNK else size


def _after_hole(fd: int, first: bytes) -> int:
    """Where the content of a truncated file starts.

    A writer without O_APPEND keeps writing at its old offset after copytruncate, leaving a
    hole of NUL bytes before the new lines; they are skipped (found with SEEK_DATA, without
    reading the hole), else the first new line would drown in max_line NUL bytes.
    """
    if not first.startswith(b"\0"):
        return 0
    try:
        pos = os.lseek(fd, 0, os.SEEK_DATA)
    except OSError:  # ENXIO: nothing but a hole (or no SEEK_DATA): read from the start
        pos = 0
    while True:
        chunk = os.pread(fd, CHUNK, pos)
        if not chunk:
            return pos
        rest = chunk.lstrip(b"\0")
        if rest:
            return pos + len(chunk) - len(rest)
        pos += len(chunk)


def _existing_ancestor(folder: str) -> str | None:
    while True:
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
        if os.path.isdir(folder):
            return folder


def _strip_compression(path: str) -> str:
    for suffix in COMPRESSED_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


def _reopen(fd: int) -> IO[bytes]:
    """A file object on ``fd`` that leaves the descriptor open when closed."""
    return open(fd, "rb", closefd=False)


def _decompressor(raw: IO[bytes], suffix: str) -> _Reader:
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if suffix == ".bz2":
        return bz2.BZ2File(raw, "rb")
    return lzma.LZMAFile(raw, "rb")


class _Decompressed:
    """A compressed file's content, read from an open descriptor (so renames do not matter)."""

    def __init__(self, fd: int, suffix: str) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        self._proc: subprocess.Popen[bytes] | None = None
        self._raw = _reopen(fd)
        self._file: _Reader
        try:
            if suffix in (".gz", ".bz2", ".xz"):
                self._file = _decompressor(self._raw, suffix)
            else:
                zstd = shutil.which("zstd")
                if zstd is None:
                    raise OSError(errno.ENOENT, "zstd is not installed: cannot read .zst files")
                self._proc = subprocess.Popen(
                    [zstd, "-dcq"], stdin=fd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
                assert self._proc.stdout is not None
                self._file = self._proc.stdout
        except BaseException:
            self._raw.close()
            raise

    def read(self, size: int) -> bytes:
        data = self._file.read(size)
        if not data and self._proc is not None:
            rc = self._proc.wait()
            if rc:
                raise EOFError(f"zstd exited with status {rc} (file incomplete or damaged)")
        return data

    def skip(self, n: int) -> bool:
        """Skip ``n`` bytes of content; False if the content is shorter."""
        while n > 0:
            data = self.read(min(n, 1 << 20))
            if not data:
                return False
            n -= len(data)
        return True

    def close(self) -> None:
        with contextlib.suppress(*DECOMPRESS_ERRORS):
            self._file.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        self._raw.close()


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1]


def _decompressed_head(fd: int, suffix: str) -> bytes | None:
    """The first HEAD_SIZE bytes of the content (all of it if shorter); None if unreadable yet."""
    try:
        d = _Decompressed(fd, suffix)
    except DECOMPRESS_ERRORS:
        return None
    try:
        head = b""
        while len(head) < HEAD_SIZE:
            data = d.read(HEAD_SIZE - len(head))
            if not data:
                break
            head += data
        return head
    except DECOMPRESS_ERRORS:
        return None
    finally:
        d.close()


class _Plain:
    """A regular file being read, with pread, from where its complete lines end."""

    def __init__(self, fd: int, st: os.stat_result, first: bytes, offset: int, max_line: int):
        self.fd = fd
        self.inode = (st.st_dev, st.st_ino)
        self.identity = Identity.of(st.st_dev, st.st_ino, first)
        self.splitter = LineSplitter(max_line, offset)

    def position(self) -> Position:
        return Position(self.identity, self.splitter.line_end)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class _Compressed:
    """A compressed file being read once, decompressed.

    ``identity`` is what its position is recorded under: the compressed file's own, or (for the
    rest of a rotated file that was compressed meanwhile) the identity of the original. A stream
    that ends early (the compressor is still writing) is tried again once the file changes.
    """

    def __init__(
        self,
        fd: int,
        st: os.stat_result,
        suffix: str,
        identity: Identity,
        offset: int,
        max_line: int,
        *,
        complete: bool = False,
    ) -> None:
        self.fd = fd
        self.inode = (st.st_dev, st.st_ino)
        self.suffix = suffix
        self.identity = identity
        self.splitter = LineSplitter(max_line, offset)
        self.complete = complete
        self._stream: _Decompressed | None = None
        self._stalled: tuple[int, int] | None = None

    def position(self) -> Position:
        return Position(self.identity, self.splitter.line_end, self.complete)

    def read(self, budget: _Budget) -> list[bytes]:
        if self.complete:
            return []
        try:
            st = os.fstat(self.fd)
        except OSError:
            return self._end()
        sig = (st.st_size, st.st_mtime_ns)
        if self._stream is None:
            if self._stalled == sig:
                # unchanged since it ended early; deleted meanwhile: it will never be complete
                return self._end() if st.st_nlink == 0 else []
            try:
                self._stream = _Decompressed(self.fd, self.suffix)
                if not self._stream.skip(self.splitter.offset):
                    return self._end()
            except DECOMPRESS_ERRORS:
                self._stall(sig)
                return []
        out: list[bytes] = []
        while budget.left > 0:
            try:
                data = self._stream.read(min(CHUNK, budget.left))
            except DECOMPRESS_ERRORS:
                self._stall(sig)
                return out
            if not data:
                return out + self._end()
            budget.left -= len(data)
            out.extend(self.splitter.feed(data))
        return out

    def _stall(self, sig: tuple[int, int]) -> None:
        self._stalled = sig
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _end(self) -> list[bytes]:
        self.complete = True
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        line = self.splitter.flush()
        return [] if line is None else [line]

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


_Source = _Plain | _Compressed


@dataclass(eq=False)
class _Tracked:
    """One followed path and what is being read on its behalf."""

    path: str
    key: str
    compressed: bool
    literal: bool = False  # named by a pattern without wildcards: kept even while missing
    cur: _Source | None = None
    last: Position | None = None  # where the last source read for this path ended
    saved: str | None = None  # the record as stored
    matched: bool = True
    pending: bool = False  # compressed: not yet decided where to start
    startup: bool = False  # pending since the follower started
    tried: tuple[int, int, int] | None = None  # pending: (ino, size, mtime) of the last try
    inode: tuple[int, int] | None = None  # compressed: the file last decided about


class FileFollower:
    """Follow the files matching some glob patterns; see the module's documentation."""

    def __init__(
        self,
        patterns: Sequence[str],
        state: StateStore,
        *,
        key_prefix: str,
        from_start: bool = False,
        read_compressed: bool = False,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        if isinstance(patterns, str) or not patterns:
            raise ValueError("patterns must be a non-empty list of paths or glob patterns")
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._patterns = list(dict.fromkeys(os.path.abspath(p) for p in patterns))
        self._state = state
        self._prefix = key_prefix
        self._from_start = from_start
        self._read_compressed = read_compressed
        self._max_line = max_line
        self._ino = INotify(nonblocking=True)
        self._watched: dict[str, int] = {}
        self._by_wd: dict[int, set[str]] = {}
        self._ancestors: set[str] = set()
        self._extra: set[str] = set()  # folders of the targets of followed symlinks
        self._tracked: dict[str, _Tracked] = {}
        self._memory: OrderedDict[tuple[int, int], list[Position]] = OrderedDict()
        self._more = False
        self._closed = False
        self._warned_limit = False
        try:
            self._ensure_watches()
            self._start()
        except BaseException:
            self.close()
            raise

    # -- public interface -------------------------------------------------------------------

    def missing(self) -> list[str]:
        """The patterns that match no file right now."""
        return [p for p in self._patterns if not self._match([p])]

    def fileno(self) -> int:
        """The inotify descriptor: readable when :meth:`read_available` has something to do."""
        return int(self._ino.fileno())

    @property
    def more(self) -> bool:
        """The last :meth:`read_available` stopped at ``max_bytes``: call it again."""
        return self._more

    def read_available(self, max_bytes: int | None = None) -> list[LogLine]:
        """Every line that can be read now (at most about ``max_bytes`` of them); non-blocking.

        Call it once at start and after each inotify wake-up; lines come in file order.
        """
        if self._closed:
            return []
        budget = _Budget(UNLIMITED if max_bytes is None else max(1, max_bytes))
        out: list[LogLine] = []
        names_changed = self._drain_events()
        self._check_all(out, budget)
        if names_changed:
            self._ensure_watches()
            self._rescan()
            self._check_all(out, budget)
        self._collect()
        self._more = budget.left <= 0
        return out

    def commit(self) -> None:
        """Store every path's position: just after the last line returned so far."""
        for t in self._tracked.values():
            pos = t.cur.position() if t.cur is not None else t.last
            if pos is None:
                continue
            text = pos.to_json()
            if text != t.saved:
                self._state.set_state(t.key, text)
                t.saved = text

    def close(self) -> None:
        """Close the files and the inotify descriptor; nothing is committed."""
        if self._closed:
            return
        self._closed = True
        for t in self._tracked.values():
            if t.cur is not None:
                t.last = t.cur.position()  # a commit() after close() still stores it
                t.cur.close()
                t.cur = None
        self._ino.close()

    async def follow(self, stop: asyncio.Event) -> AsyncIterator[list[LogLine]]:
        """Batches of lines as they are written, until ``stop`` is set.

        The caller handles each batch, then calls :meth:`commit`.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = self.fileno()
        loop.add_reader(fd, wake.set)
        try:
            while not stop.is_set():
                wake.clear()
                batch = self.read_available(BATCH_BYTES)
                if batch:
                    yield batch
                if self._more:
                    await asyncio.sleep(0)
                    continue
                await wait_any(wake, stop)
        finally:
            loop.remove_reader(fd)

    # -- start --------------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return self._prefix + path

    def _load(self, path: str) -> tuple[str | None, Position | None]:
        text = self._state.get_state(self._key(path))
        if text is None:
            return None, None
        try:
            return text, Position.from_json(text)
        except ValueError as e:
            log.warning("%s: ignoring the stored log position (%s)", path, e)
            return text, None

    def _start(self) -> None:
        matched = self._match(self._patterns)
        literal = [p for p in self._patterns if not _magic(p) and self._wanted(p)]
        paths = sorted(set(matched) | set(literal))
        # the records of these paths, and of the uncompressed names of compressed ones
        candidates = set(paths) | {_strip_compression(p) for p, c in matched.items() if c}
        texts: dict[str, str] = {}
        records: dict[str, Position] = {}
        for p in sorted(candidates):
            text, rec = self._load(p)
            if text is not None:
                texts[p] = text
            if rec is not None:
                records[p] = rec
                self._remember(rec)

        opened: dict[str, tuple[int, os.stat_result, bytes]] = {}
        resume: dict[str, int] = {}
        claimed: set[tuple[int, int]] = set()
        for p in paths:
            if matched.get(p) is False and (o := _open_regular(p)) is not None:
                opened[p] = o
                fd, st, first = o
                pos = self._recall(st.st_dev, st.st_ino, first)
                if pos is not None:
                    resume[p] = pos.offset if pos.offset <= st.st_size else 0
                    claimed.add((st.st_dev, st.st_ino))

        for p in paths:
            t = _Tracked(p, self._key(p), p.endswith(COMPRESSED_SUFFIXES), literal=p in literal)
            t.saved = texts.get(p)
            self._tracked[p] = t
            if t.compressed:
                t.pending = t.startup = True
                continue
            o = opened.pop(p, None)
            own = records.get(p)
            if p in resume:
                assert o is not None
                t.cur = self._plain(p, o, resume[p])
            elif own is None:
                if o is not None:  # never seen: from its end, or its start when asked
                    offset = 0 if self._from_start else _tail_offset(o[0], o[1].st_size)
                    t.cur = self._plain(p, o, offset)
                    self._persist(t, t.cur.position())
            else:
                # the recorded file is not at the path: rotated away while we were stopped?
                inode = (own.identity.dev, own.identity.ino)
                pred = None
                if inode not in claimed and not own.complete:
                    pred = self._find_rotated(p, own, exclude=set(paths))
                if pred is not None:
                    t.cur = pred
                    if o is not None:
                        os.close(o[0])
                elif o is not None:  # replaced or truncated: the new content from its start
                    truncated = own.identity.same_inode(o[1].st_dev, o[1].st_ino)
                    t.cur = self._plain(p, o, _after_hole(o[0], o[2]) if truncated else 0)
        for fd, _, _ in opened.values():
            os.close(fd)

    def _find_rotated(self, path: str, rec: Position, *, exclude: set[str]) -> _Source | None:
        """The file ``rec`` describes, under another name in the path's folder (or compressed)."""
        folders = [os.path.dirname(path)]
        real = os.path.dirname(os.path.realpath(path))
        if real not in folders:
            folders.append(real)
        base = os.path.basename(path)
        for folder in folders:
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.path in exclude or e.path == path:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if rec.identity.same_inode(st.st_dev, st.st_ino):
                    o = _open_regular(e.path)
                    if o is None:
                        continue
                    if rec.identity.matches(o[1].st_dev, o[1].st_ino, o[2]):
                        log.info("%s: reading the rest of %s first (rotated)", path, e.path)
                        return self._plain(path, o, min(rec.offset, o[1].st_size))
                    os.close(o[0])
                elif (
                    self._read_compressed
                    and rec.identity.head_len > 0
                    and e.name.startswith(base)
                    and e.name.endswith(COMPRESSED_SUFFIXES)
                ):
                    o = _open_regular(e.path)
                    if o is None:
                        continue
                    head = _decompressed_head(o[0], _suffix(e.path))
                    if head is not None and rec.identity.head_matches(head):
                        log.info("%s: reading the rest of %s first (rotated)", path, e.path)
                        return _Compressed(
                            o[0], o[1], _suffix(e.path), rec.identity, rec.offset, self._max_line
                        )
                    os.close(o[0])
        return None

    # -- what was read before ---------------------------------------------------------------

    def _remember(self, pos: Position) -> None:
        key = (pos.identity.dev, pos.identity.ino)
        known = [p for p in self._memory.pop(key, []) if p.identity != pos.identity]
        known.append(pos)
        self._memory[key] = known[-4:]
        while len(self._memory) > MEMORY:
            self._memory.popitem(last=False)

    def _positions(self) -> Iterable[Position]:
        for known in self._memory.values():
            yield from known
        for t in self._tracked.values():
            if t.cur is not None:
                yield t.cur.position()

    def _recall(self, dev: int, ino: int, first: bytes) -> Position | None:
        """How far this very file (device, inode, first bytes) was read, if it was."""
        best: Position | None = None
        for pos in self._positions():
            if pos.identity.matches(dev, ino, first) and (best is None or pos.offset > best.offset):
                best = pos
        return best

    def _recall_content(self, head: bytes) -> Position | None:
        """How far a file that started with ``head`` was read (for a compressed copy)."""
        best: Position | None = None
        for pos in self._positions():
            ident = pos.identity
            better = best is None or pos.offset > best.offset
            if better and ident.head_len > 0 and ident.head_matches(head):
                best = pos
        return best

    def _persist(self, t: _Tracked, pos: Position) -> None:
        """Store a first position at once: a path seen for the first time is then known."""
        text = pos.to_json()
        self._state.set_state(t.key, text)
        t.saved = text

    # -- inotify ------------------------------------------------------------------------------

    def _folders(self) -> tuple[set[str], set[str]]:
        """(folders to watch, parents of folder globs to watch for new folders)."""
        folders = set(self._extra)
        parents: set[str] = set()
        for pat in self._patterns:
            folder = os.path.dirname(pat)
            if _magic(folder):
                folders.update(d for d in glob.glob(folder) if os.path.isdir(d))
                parent = folder
                while _magic(parent):
                    parent = os.path.dirname(parent)
                parents.add(parent)
            else:
                folders.add(folder)
        return folders, parents

    def _ensure_watches(self) -> None:
        folders, parents = self._folders()
        for folder in sorted(folders):
            if folder not in self._watched:
                self._watch(folder)
        for parent in sorted(parents - self._ancestors):
            self._watch_ancestor(parent)

    def _watch(self, folder: str) -> None:
        try:
            wd = self._ino.add_watch(folder, FOLDER_MASK)
        except OSError as e:
            if e.errno == errno.ENOSPC and not self._warned_limit:
                self._warned_limit = True
                log.warning("inotify watch limit reached (fs.inotify.max_user_watches)")
            # not there yet: watch the nearest folder that is, to see it created
            ancestor = _existing_ancestor(folder)
            if ancestor is not None:
                self._watch_ancestor(ancestor)
            return
        self._watched[folder] = wd
        self._by_wd.setdefault(wd, set()).add(folder)

    def _watch_ancestor(self, folder: str) -> None:
        with contextlib.suppress(OSError):
            self._ino.add_watch(folder, ANCESTOR_MASK)
            self._ancestors.add(folder)

    def _drain_events(self) -> bool:
        """Read pending inotify events; True if names may have changed (rescan needed)."""
        changed = False
        try:
            events = self._ino.read(timeout=0)
        except OSError as e:
            log.warning("reading inotify events failed: %s", e)
            return True
        for ev in events:
            if ev.mask & NAMES_CHANGED:
                changed = True
            if ev.mask & (flags.IGNORED | flags.MOVE_SELF):
                if ev.mask & flags.MOVE_SELF:  # the folder moved away: its name is free again
                    with contextlib.suppress(OSError):
                        self._ino.rm_watch(ev.wd)
                for folder in self._by_wd.pop(ev.wd, set()):
                    self._watched.pop(folder, None)
                self._ancestors.clear()  # cheap to add again; inotify merges duplicates
        return changed

    def _watch_target(self, path: str) -> None:
        """A followed symlink: its target's folder must be watched too."""
        folder = os.path.dirname(os.path.realpath(path))
        if folder != os.path.dirname(path) and folder not in self._extra:
            self._extra.add(folder)
            self._watch(folder)

    # -- following ----------------------------------------------------------------------------

    def _wanted(self, path: str) -> bool:
        return self._read_compressed or not path.endswith(COMPRESSED_SUFFIXES)

    def _match(self, patterns: Sequence[str]) -> dict[str, bool]:
        """Followed paths matching ``patterns`` now, each with "is compressed"."""
        found: dict[str, bool] = {}
        for pat in patterns:
            for p in sorted(glob.glob(pat)) if _magic(pat) else [pat]:
                if self._wanted(p) and _stat_regular(p) is not None:
                    found.setdefault(p, p.endswith(COMPRESSED_SUFFIXES))
        return found

    def _plain(self, path: str, o: tuple[int, os.stat_result, bytes], offset: int) -> _Plain:
        self._watch_target(path)
        return _Plain(o[0], o[1], o[2], offset, self._max_line)

    def _rescan(self) -> None:
        matched = self._match(self._patterns)
        for p, compressed in matched.items():
            t = self._tracked.get(p)
            if t is None:
                self._adopt(p, compressed)
            else:
                t.matched = True
        for p, t in self._tracked.items():
            if p not in matched and not t.literal:
                t.matched = False

    def _holder(self, inode: tuple[int, int], exclude: _Tracked) -> _Tracked | None:
        """The tracker reading this file for a path that no longer names it (a rename)."""
        for t in self._tracked.values():
            if t is exclude or t.cur is None or t.cur.inode != inode:
                continue
            st = _stat_regular(t.path)
            if st is None or (st.st_dev, st.st_ino) != inode:
                return t
        return None

    def _adopt(self, path: str, compressed: bool) -> None:
        """A path that started to match while running."""
        text, _ = self._load(path)
        t = _Tracked(path, self._key(path), compressed)
        t.saved = text
        self._tracked[path] = t
        if compressed:
            if not self._take_over(t):
                t.pending = True
            return
        self._open_new(t)

    def _take_over(self, t: _Tracked) -> bool:
        """The file at ``t``'s path is read for a path that no longer names it: take it."""
        st = _stat_regular(t.path)
        if st is None:
            return False
        holder = self._holder((st.st_dev, st.st_ino), t)
        if holder is None or holder.cur is None:
            return False
        src = holder.cur
        if isinstance(src, _Compressed) != t.compressed:
            return False
        log.info("%s: continuing %s (renamed)", t.path, holder.path)
        t.cur, holder.cur, holder.last = src, None, None
        t.inode = src.inode
        return True

    def _open_new(self, t: _Tracked) -> None:
        """Open the file that appeared at ``t``'s path: from where it was read if it is known
        (a rename), else from its start (it was created while we run)."""
        if self._take_over(t):
            return
        o = _open_regular(t.path)
        if o is None:
            return
        st = o[1]
        pos = self._recall(st.st_dev, st.st_ino, o[2])
        offset = pos.offset if pos is not None and pos.offset <= st.st_size else 0
        t.cur = self._plain(t.path, o, offset)
        if pos is None and t.saved is None and t.last is None:
            self._persist(t, t.cur.position())

    def _decide(self, t: _Tracked) -> None:
        """Where to start a compressed file (once its first bytes can be decompressed)."""
        st = _stat_regular(t.path)
        if st is None:
            return
        tried = (st.st_ino, st.st_size, st.st_mtime_ns)
        if tried == t.tried:
            return
        t.tried = tried
        o = _open_regular(t.path)
        if o is None:
            return
        fd, st, first = o
        suffix = _suffix(t.path)
        ident = Identity.of(st.st_dev, st.st_ino, first)
        t.inode = (st.st_dev, st.st_ino)
        pos = self._recall(st.st_dev, st.st_ino, first)
        if pos is not None:  # this very compressed file: read before (perhaps renamed since)
            ident = pos.identity.grown(first)
            t.cur = _Compressed(
                fd, st, suffix, ident, pos.offset, self._max_line, complete=pos.complete
            )
            t.pending = False
            return
        head = _decompressed_head(fd, suffix)
        if head is None:  # still being written, or damaged: try again when it changes
            os.close(fd)
            return
        t.pending = False
        known = self._recall_content(head)
        if known is not None:  # the compressed copy of a file read before: only the rest
            offset = known.offset
        elif not t.startup or self._from_start or t.saved is not None:
            offset = 0
        else:  # an old compressed log found at start: not read unless from_start
            t.cur = _Compressed(fd, st, suffix, ident, 0, self._max_line, complete=True)
            self._persist(t, t.cur.position())
            return
        t.cur = _Compressed(fd, st, suffix, ident, offset, self._max_line)
        if t.saved is None:
            self._persist(t, t.cur.position())

    def _check_all(self, out: list[LogLine], budget: _Budget) -> None:
        for t in list(self._tracked.values()):
            try:
                if t.compressed:
                    self._check_compressed(t, out, budget)
                else:
                    self._check(t, out, budget)
            except OSError as e:
                log.warning("%s: %s", t.path, e)

    def _emit(self, t: _Tracked, raws: list[bytes], out: list[LogLine]) -> None:
        out.extend(LogLine(t.path, decode(r), None) for r in raws)

    def _check_compressed(self, t: _Tracked, out: list[LogLine], budget: _Budget) -> None:
        if isinstance(t.cur, _Compressed) and not self._read_compressed_source(
            t, t.cur, out, budget
        ):
            return
        if not t.pending and t.cur is None:
            st = _stat_regular(t.path)
            if st is not None and (st.st_dev, st.st_ino) != t.inode:
                # another compressed file took the name (the next rotation): decide anew
                t.pending, t.startup, t.tried = True, False, None
        if t.pending and t.matched:
            self._decide(t)
            if isinstance(t.cur, _Compressed):
                self._read_compressed_source(t, t.cur, out, budget)

    def _read_compressed_source(
        self, t: _Tracked, src: _Compressed, out: list[LogLine], budget: _Budget
    ) -> bool:
        """Read on; True once it is read to its end (and closed)."""
        self._emit(t, src.read(budget), out)
        if not src.complete:
            return False
        t.last = src.position()
        self._remember(t.last)
        src.close()
        t.cur = None
        return True

    def _check(self, t: _Tracked, out: list[LogLine], budget: _Budget) -> None:
        for _ in range(4):  # each turn either returns or finishes one file
            src = t.cur
            st = _stat_regular(t.path)
            if src is None:
                if st is None:
                    return
                self._open_new(t)
                if t.cur is None:
                    return
                continue
            if isinstance(src, _Compressed):  # the compressed rest of a rotated file
                if not self._read_compressed_source(t, src, out, budget):
                    return
                continue
            fst = os.fstat(src.fd)
            here = st is not None and (st.st_dev, st.st_ino) == src.inode
            self._verify(t, src, fst, out)
            self._drain(t, src, out, budget)
            if here or budget.left <= 0:
                return
            if fst.st_nlink > 0 and (st is None or st.st_size == 0):
                # renamed away, and nothing written to the new file yet: the writer may
                # still be writing to this one until it reopens its log
                return
            # the old file was read to its end; the name belongs to a new file now
            self._emit(t, [r] if (r := src.splitter.flush()) is not None else [], out)
            t.last = src.position()
            self._remember(t.last)
            src.close()
            t.cur = None

    def _verify(self, t: _Tracked, src: _Plain, fst: os.stat_result, out: list[LogLine]) -> None:
        """Notice truncation (copytruncate, ``> file``) and in-place rewriting."""
        first = os.pread(src.fd, HEAD_SIZE, 0)
        if fst.st_size >= src.splitter.offset and src.identity.head_matches(first):
            src.identity = src.identity.grown(first)
            return
        log.info("%s: truncated; reading it again from its start", t.path)
        self._emit(t, [r] if (r := src.splitter.flush()) is not None else [], out)
        src.splitter.reset(_after_hole(src.fd, first))
        src.identity = Identity.of(fst.st_dev, fst.st_ino, first)

    def _drain(self, t: _Tracked, src: _Plain, out: list[LogLine], budget: _Budget) -> None:
        sp = src.splitter
        while budget.left > 0:
            data = os.pread(src.fd, min(CHUNK, budget.left), sp.offset)
            if not data:
                return
            budget.left -= len(data)
            self._emit(t, sp.feed(data), out)

    def _collect(self) -> None:
        """Forget paths that no longer match and have nothing left to read."""
        for p in [p for p, t in self._tracked.items() if not t.matched and t.cur is None]:
            t = self._tracked.pop(p)
            if t.last is not None:
                self._remember(t.last)
