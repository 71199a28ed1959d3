"""Follow the systemd journal through ``journalctl``, resuming after the last committed entry.

``journalctl --output=json --follow`` is the interface: it is what every systemd ships, it
reads every journal file version, and it needs no C bindings. Its standard output is read
without blocking from the event loop; each JSON line is one entry, formatted the way fail2ban
formats journal entries (``<hostname> <SYSLOG_IDENTIFIER>[<PID>]: <MESSAGE>``, see
:func:`format_entry`) so that fail2ban's filters match unchanged. :meth:`JournalFollower.commit`
stores the ``__CURSOR`` of the last entry returned; a restart continues right after it
(``--after-cursor``), so entries written while stopped are read and none twice. The first start
begins at the end of the journal (the cursor of its last entry is stored at once), or at its
start with ``from_start``.

``--merge`` is always given: with ``--follow`` alone, journalctl shows only the current boot,
which would skip the entries written after the last commit and before a reboot. For the system
journal, a ``_MACHINE_ID`` match then keeps out journals of other machines (containers, remote).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from stockade.sensors.logs.follow import StateStore, wait_any
from stockade.sensors.logs.lines import LineSplitter, LogLine

__all__ = ["JournalFollower", "format_entry", "journal_args"]

log = logging.getLogger("stockade")

SYSTEM_JOURNALS = ("/var/log/journal", "/run/log/journal")
MAX_ENTRY = 16 << 20  # a JSON line longer than this is skipped (journald's own limits are lower)
READ_LIMIT = 4 << 20  # bytes read per read_available(); the pipe stays readable for the rest
RESTART_DELAY = 1.0
MATCH = re.compile(r"[A-Z0-9_]+=.*", re.DOTALL)
CURSOR = re.compile(r"[a-z]=[0-9a-fA-F]+(;[a-z]=[0-9a-fA-F]+)*")


# -- formatting, as fail2ban's FilterSystemd.formatJournalEntry -------------------------------


def _values(value: Any) -> list[bytes]:
    """A JSON field value as its raw values: journalctl writes a string, an array of byte
    values (not UTF-8 or not printable), or an array of those (a field given several times)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, list):
        if all(isinstance(b, int) for b in value):
            return [bytes(value)]
        out: list[bytes] = []
        for v in value:
            out.extend(_values(v))
        return out
    return [str(value).encode("utf-8")]


def _first(entry: Mapping[str, Any], name: str) -> bytes | None:
    values = _values(entry.get(name))
    return values[0] if values else None


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace")


def _pid(raw: bytes | None) -> int | bytes | None:
    """python-systemd's conversion of *_PID fields: an int, else the raw bytes."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def _pid_text(value: int | bytes) -> str:
    if isinstance(value, int):
        return f"[{value}]"
    try:  # fail2ban: int(v, 0), which also reads 0x1f; else the value as Python prints it
        return f"[{int(value, 0)}]"
    except ValueError:
        return f"[{value!s}]"


def _monotonic(entry: Mapping[str, Any]) -> float:
    for name in ("_SOURCE_MONOTONIC_TIMESTAMP", "__MONOTONIC_TIMESTAMP"):
        raw = _first(entry, name)
        if raw is not None:
            with contextlib.suppress(ValueError):
                return int(raw) / 1_000_000
    return 0.0


def format_entry(entry: Mapping[str, Any]) -> str:
    """The text fail2ban makes of a journal entry (``journalctl -o json`` form).

    ``<_HOSTNAME> <SYSLOG_IDENTIFIER or _COMM>[<SYSLOG_PID or _PID>]: <MESSAGE>``, each part
    left out when empty; ``kernel:`` gets the monotonic time in brackets instead of a PID; a
    MESSAGE given several times is joined with spaces; bytes that are not UTF-8 become U+FFFD;
    newlines become the two characters ``\\n``. Other fields given several times: the first
    value is used (fail2ban fails on those).
    """
    elements: list[str] = []
    host = _text(_first(entry, "_HOSTNAME"))
    if host:
        elements.append(host)
    ident = _first(entry, "SYSLOG_IDENTIFIER") or _first(entry, "_COMM")
    if ident:
        head = _text(ident)
        pid = _pid(_first(entry, "SYSLOG_PID")) or _pid(_first(entry, "_PID"))
        if pid:
            head += _pid_text(pid)
        head += ":"
        elements.append(head)
        if head == "kernel:":
            elements.append(f"[{_monotonic(entry):12.6f}]")
    elements.append(" ".join(_text(v) for v in _values(entry.get("MESSAGE", ""))))
    return " ".join(elements).replace("\n", "\\n")


def entry_time(entry: Mapping[str, Any]) -> float | None:
    raw = _first(entry, "__REALTIME_TIMESTAMP")
    if raw is None:
        return None
    try:
        return int(raw) / 1_000_000
    except ValueError:
        return None


# -- journalctl ---------------------------------------------------------------------------------


def _machine_id() -> str | None:
    try:
        text = Path("/etc/machine-id").read_text().strip()
    except OSError:
        return None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) else None


def journal_args(
    matches: Sequence[Sequence[str]], *, directory: str | None = None, file: str | None = None
) -> tuple[list[str], list[str]]:
    """journalctl's options naming the journal, and its match terms: groups ORed with ``+``,
    the terms of a group ANDed (several values of one field ORed), as journalctl does."""
    options = ["--merge"]
    groups = [list(g) for g in matches]
    if directory is not None:
        options.append(f"--directory={directory}")
    elif file is not None:
        options.append(f"--file={file}")
    elif (machine := _machine_id()) is not None:
        # the system journal: this machine's entries only (--merge would add containers')
        mine = f"_MACHINE_ID={machine}"
        groups = [[*g, mine] for g in groups] if groups else [[mine]]
    terms: list[str] = []
    for g in groups:
        if terms:
            terms.append("+")
        terms.extend(g)
    return options, terms


def _has_journal_files(folder: Path, depth: int = 2) -> bool:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    for e in entries:
        if e.name.endswith((".journal", ".journal~")):
            return True
        if depth > 0 and e.is_dir() and _has_journal_files(e, depth - 1):
            return True
    return False


class JournalFollower:
    """Follow journal entries selected by ``matches``; the API mirrors :class:`FileFollower`.

    ``matches`` is a list of groups of ``FIELD=value`` terms: ``[["_SYSTEMD_UNIT=ssh.service"],
    ["_COMM=sshd"]]`` is journalctl's ``_SYSTEMD_UNIT=ssh.service + _COMM=sshd``. The cursor is
    stored under ``key_prefix + "cursor"``.
    """

    def __init__(
        self,
        matches: Sequence[Sequence[str]],
        state: StateStore,
        *,
        key_prefix: str,
        directory: str | None = None,
        file: str | None = None,
        from_start: bool = False,
        journalctl: str = "journalctl",
    ) -> None:
        if isinstance(matches, str) or any(isinstance(g, str) for g in matches):
            raise ValueError("matches must be a list of lists of FIELD=value terms")
        for group in matches:
            if not group:
                raise ValueError("a match group must not be empty")
            for term in group:
                if not MATCH.fullmatch(term):
                    raise ValueError(f"not a journal match (FIELD=value): {term!r}")
        if directory is not None and file is not None:
            raise ValueError("give a directory or a file, not both")
        self._matches = [list(g) for g in matches]
        self._state = state
        self._key = key_prefix + "cursor"
        self._directory = directory
        self._file = file
        self._from_start = from_start
        self._journalctl = journalctl
        self._proc: subprocess.Popen[bytes] | None = None
        self._splitter = LineSplitter(MAX_ENTRY)
        self._err = b""
        self._cursor: str | None = None  # of the last entry returned
        self._saved: str | None = None  # as stored
        self._loaded = False
        self.exited: int | None = None  # journalctl's exit status, once it has ended

    # -- public interface -------------------------------------------------------------------

    def missing(self) -> list[str]:
        """Why no entry can come (journalctl or the journal is missing); empty when fine."""
        if self._executable() is None:
            return [f"{self._journalctl} is not installed (it comes with systemd)"]
        if self._directory is not None:
            if not _has_journal_files(Path(self._directory)):
                return [f"no journal files in {self._directory}"]
        elif self._file is not None:
            if not Path(self._file).is_file():
                return [f"no journal file {self._file}"]
        elif not any(_has_journal_files(Path(d)) for d in SYSTEM_JOURNALS):
            return ["no systemd journal on this host (/var/log/journal, /run/log/journal)"]
        return []

    @property
    def running(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        """journalctl's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> bool:
        """Start journalctl; False (and a warning) if it cannot run."""
        if self._proc is not None:
            return True
        exe = self._executable()
        if exe is None:
            log.warning("%s is not installed: the journal is not read", self._journalctl)
            return False
        options, terms = journal_args(self._matches, directory=self._directory, file=self._file)
        cursor = self._position(exe, options, terms)
        args = [exe, "--output=json", "--all", "--follow", "--no-tail", "--no-pager", "--quiet"]
        if cursor is not None:
            args.append(f"--after-cursor={cursor}")
        args += [*options, "--", *terms]
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
            )
        except OSError as e:
            log.warning("cannot run %s: %s", exe, e)
            return False
        assert self._proc.stdout is not None and self._proc.stderr is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        os.set_blocking(self._proc.stderr.fileno(), False)
        self._splitter.reset(0)
        self.exited = None
        return True

    def fileno(self) -> int:
        """journalctl's standard output, for ``loop.add_reader``."""
        if self._proc is None or self._proc.stdout is None:
            raise RuntimeError("the journal follower is not started")
        return self._proc.stdout.fileno()

    def read_available(self) -> list[LogLine]:
        """The entries journalctl has written so far (non-blocking)."""
        if self._proc is None:
            return []
        assert self._proc.stdout is not None
        out: list[LogLine] = []
        fd = self._proc.stdout.fileno()
        budget = READ_LIMIT
        ended = False
        while budget > 0:
            try:
                data = os.read(fd, min(budget, 1 << 16))
            except BlockingIOError:
                break
            if not data:
                ended = True
                break
            budget -= len(data)
            for raw in self._splitter.feed(data):
                line = self._entry(raw)
                if line is not None:
                    out.append(line)
        self._read_errors()
        if ended:
            self._ended()
        return out

    def commit(self) -> None:
        """Store the cursor of the last entry returned."""
        if self._cursor is not None and self._cursor != self._saved:
            self._state.set_state(self._key, self._cursor)
            self._saved = self._cursor

    def close(self) -> None:
        """Stop journalctl (nothing is committed)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    async def follow(self, stop: asyncio.Event) -> AsyncIterator[list[LogLine]]:
        """Batches of entries as they come, until ``stop`` is set; journalctl is started (and
        started again, after a second, if it ends). The caller handles each batch, then
        calls :meth:`commit`."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            if not self.start():
                return
            wake = asyncio.Event()
            fd = self.fileno()
            loop.add_reader(fd, wake.set)
            try:
                while not stop.is_set() and self._proc is not None:
                    wake.clear()
                    batch = self.read_available()
                    if batch:
                        yield batch
                    if self._proc is not None:
                        await wait_any(wake, stop)
            finally:
                loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("journalctl ended (status %s); starting it again", self.exited)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESTART_DELAY)
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _executable(self) -> str | None:
        return shutil.which(self._journalctl)

    def _position(self, exe: str, options: list[str], terms: list[str]) -> str | None:
        """Where to continue: the last entry returned, the stored cursor, or (first start) the
        end of the journal, stored at once so that a restart continues from there."""
        if not self._loaded:
            self._loaded = True
            stored = self._state.get_state(self._key)
            if stored is not None and not CURSOR.fullmatch(stored):
                log.warning("ignoring a stored journal cursor that is not one: %r", stored)
                stored = None
            self._saved = stored
            if self._cursor is None:
                self._cursor = stored
        if self._cursor is not None or self._from_start:
            return self._cursor
        machine = [t for t in terms if t.startswith("_MACHINE_ID=")][:1]
        tail = self._tail([exe, *options, "--", *machine])
        if tail is not None:
            self._cursor = tail
            self.commit()
        return tail

    def _tail(self, command: list[str]) -> str | None:
        """The cursor of the journal's last entry (whatever it matches), None if empty."""
        exe, rest = command[0], command[1:]
        args = [exe, "--output=json", "--output-fields=__CURSOR", "--lines=1", "--no-pager"]
        args += ["--quiet", *rest]
        try:
            done = subprocess.run(
                args, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("cannot find the end of the journal: %s", e)
            return None
        for raw in reversed(done.stdout.splitlines()):
            with contextlib.suppress(ValueError):
                cursor = json.loads(raw).get("__CURSOR")
                if isinstance(cursor, str):
                    return cursor
        return None

    def _entry(self, raw: bytes) -> LogLine | None:
        try:
            entry = json.loads(raw)
        except ValueError:
            log.warning("journalctl wrote something that is not a JSON entry (%d bytes)", len(raw))
            return None
        if not isinstance(entry, dict):
            return None
        cursor = entry.get("__CURSOR")
        if isinstance(cursor, str):
            self._cursor = cursor
        return LogLine("journal", format_entry(entry), entry_time(entry))

    def _read_errors(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with contextlib.suppress(BlockingIOError, ValueError):
            while data := os.read(self._proc.stderr.fileno(), 1 << 16):
                self._err += data
        *lines, self._err = self._err.split(b"\n")
        for line in lines:
            if line.strip():
                log.warning("journalctl: %s", line.decode("utf-8", "replace"))
        self._err = self._err[-4096:]

    def _ended(self) -> None:
        assert self._proc is not None
        self.exited = self._proc.wait()
        self._read_errors()
        if self._err.strip():
            log.warning("journalctl: %s", self._err.decode("utf-8", "replace"))
            self._err = b""
        self.close()
