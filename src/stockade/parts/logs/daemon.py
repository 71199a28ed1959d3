"""The logs part inside ``stockade run``: follow each jail's logs, count failures, ban.

Each jail reads its log files (followed through rotation, inotify-driven) or, when its files do
not exist and it has a journal match, the systemd journal — which is how sshd logs on a stock
Debian 12. A batch of lines goes through the jail's filter; failures from addresses outside
the allowlist are counted; at ``maxretry`` within ``findtime`` the address is banned (for a
time that grows for repeat offenders when ``bantime.increment`` is on), the ban is stored, put in
place by the responder and raised as an alert. Positions are stored only after the batch's bans
are, so a crash replays lines rather than losing them.

All reading, matching and banning happens on the part's own worker thread; the event loop
only waits for inotify and journalctl to say there is something to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stockade.context import Context
from stockade.detectors.logs.bantime import ban_duration
from stockade.detectors.logs.engine import FilterSpec
from stockade.detectors.logs.tickets import Decision, FailureCounter
from stockade.durations import format_duration
from stockade.errors import StockadeError
from stockade.model import Alert, Severity
from stockade.parts.base import WorkerThread
from stockade.parts.logs.bans import BanService, build_allowlist, build_responder
from stockade.parts.logs.filterhost import FilterHost, Found
from stockade.parts.logs.jails import Jail, build_jails
from stockade.responders.allowlist import Allowlist
from stockade.responders.base import ResponderError
from stockade.sensors.logs.follow import FileFollower
from stockade.sensors.logs.journal import JournalFollower
from stockade.sensors.logs.lines import LogLine

log = logging.getLogger("stockade.logs")
T = TypeVar("T")

PART = "logs"
READ_BYTES = 4 << 20  # per source per round, so one busy log does not starve the others
HOUSEKEEPING = 60.0
COMMIT_EVERY = 1.0  # positions and failure counts are stored together, at most this often


class BufferedState:
    """The state interface the followers write positions to, held until :meth:`flush`, so that
    positions and failure counts reach the store in ONE transaction: after a crash, exactly the
    lines whose effect was not stored are read again."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.pending: dict[str, str] = {}

    def get_state(self, key: str) -> str | None:
        return self.pending.get(key) or self.store.get_state(key)

    def set_state(self, key: str, value: str) -> None:
        self.pending[key] = value

    def flush(self, extra: dict[str, str]) -> None:
        self.pending.update(extra)
        if self.pending:
            self.store.set_states(self.pending)
        self.pending = {}


@dataclass
class Source:
    jail: Jail
    follower: FileFollower | JournalFollower
    kind: str  # "files" or "journal"
    spec: FilterSpec
    name: str
    index: int = 0  # the filter's number in the filter process


@dataclass
class JailState:
    jail: Jail
    counter: FailureCounter
    ignore: Allowlist
    bans: int = 0
    failures: int = 0
    sources: list[Source] = field(default_factory=list)


class LogsPart:
    name = "logs"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.logs
        self._worker: WorkerThread | None = None
        self._store: Any = None
        self._bans: BanService | None = None
        self._jails: dict[str, JailState] = {}
        self._sources: list[Source] = []
        self._ready: set[int] = set()
        self._wake = asyncio.Event()
        self._said: set[str] = set()
        self._host: FilterHost | None = None
        self._state: BufferedState = BufferedState(None)
        self._dirty: set[str] = set()
        self._last_commit = 0.0
        self.on_ban: Callable[[str, str], None] | None = None  # (jail, address), for tests

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._worker is not None
        return await self._worker.call(fn, *args)

    async def run(self) -> None:
        self._worker = WorkerThread("logs")
        loop = asyncio.get_running_loop()
        try:
            try:
                await self._call(self._open)
            except StockadeError as e:
                log.error("%s; the logs part waits for a configuration that works (SIGHUP)", e)
                await asyncio.Event().wait()
            for i, src in enumerate(self._sources):
                loop.add_reader(src.follower.fileno(), self._on_ready, i)
            self._ready = set(range(len(self._sources)))
            self._wake.set()
            next_housekeeping = time.monotonic() + HOUSEKEEPING
            while True:
                timeout = max(0.0, next_housekeeping - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                ready, self._ready = self._ready, set()
                if ready:
                    more = await self._call(self._drain, sorted(ready))
                    if more:
                        self._ready |= set(more)
                        self._wake.set()
                if time.monotonic() >= next_housekeeping:
                    await self._call(self._housekeeping)
                    next_housekeeping = time.monotonic() + HOUSEKEEPING
        finally:
            for src in self._sources:
                with contextlib.suppress(Exception):
                    loop.remove_reader(src.follower.fileno())
            if self._worker is not None:
                await self._worker.close(self._close)

    def _on_ready(self, index: int) -> None:
        self._ready.add(index)
        self._wake.set()

    # -- start and stop ---------------------------------------------------------------------

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        self._state = BufferedState(self._store)
        jails = build_jails(self.cfg)
        allowlist = build_allowlist(self.cfg)
        responder = build_responder(self.cfg, allowlist)
        self._bans = BanService(self._store, responder, ipv6_prefix=self.cfg.ipv6_prefix)
        if not jails:
            log.info("no jail is enabled")
        for jail in jails:
            ignore = build_allowlist(self.cfg, jail.ignoreip)
            counter = FailureCounter(jail.maxretry, jail.findtime, jail.maxmatches)
            saved = self._store.get_state(_counts_key(jail.name))
            if saved:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    counter.restore(json.loads(saved))
                counter.expire(time.time())
            state = JailState(jail, counter, ignore)
            self._jails[jail.name] = state
            src = self._source(jail)
            if src is not None:
                src.index = len(self._sources)
                state.sources.append(src)
                self._sources.append(src)
        self._host = FilterHost(
            [(src.spec, src.jail.usedns) for src in self._sources], self.cfg.line_budget
        )
        restored = self._bans.restore(self._ports_of)
        if restored:
            log.info("restored %d active ban(s) in one batch", restored)

    def _source(self, jail: Jail) -> Source | None:
        """The jail's log files, or the journal when they do not exist (backend auto); when
        neither is there, the files are waited for."""
        prefix = f"logs.{jail.name}."
        files = None
        paths = ", ".join(jail.logpath)
        if jail.backend in ("auto", "files") and jail.logpath:
            files = FileFollower(
                list(jail.logpath),
                self._state,
                key_prefix=prefix + "file:",
                from_start=self.cfg.from_start,
                read_compressed=self.cfg.read_compressed,
                max_line=self.cfg.max_line,
            )
            if jail.backend == "files" or not files.missing() or not jail.journalmatch:
                for p in files.missing():
                    self._say(f"jail {jail.name}: {p} does not exist (yet); waiting for it")
                return Source(jail, files, "files", jail.spec, paths)
        if jail.backend in ("auto", "journal") and jail.journalmatch:
            journal = JournalFollower(
                [list(g) for g in jail.journalmatch],
                self._state,
                key_prefix=prefix + "journal:",
                directory=self.cfg.journal_directory or None,
                from_start=self.cfg.from_start,
            )
            why = journal.missing()
            if why:
                journal.close()
                if files is not None:
                    self._say(
                        f"jail {jail.name}: {paths} not found and no journal "
                        f"({'; '.join(why)}); waiting for the files"
                    )
                    return Source(jail, files, "files", jail.spec, paths)
                self._say(f"jail {jail.name}: no journal ({'; '.join(why)})")
                return None
            if files is not None:
                files.close()
            journal.start()
            if jail.logpath:
                self._say(f"jail {jail.name}: {paths} not found; reading the journal")
            name = "journal " + " + ".join(" ".join(g) for g in jail.journalmatch)
            return Source(jail, journal, "journal", jail.journal_spec, name)
        self._say(f"jail {jail.name}: nothing to read (no logpath, no journalmatch)")
        return None

    def _say(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            log.info("%s", text)

    def _ports_of(self, jail: str) -> tuple[tuple[str, ...] | None, str]:
        state = self._jails.get(jail)
        return (state.jail.ports, state.jail.protocol) if state else (None, "tcp")

    def _close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._commit()
        if self._host is not None:
            self._host.close()
        for src in self._sources:
            with contextlib.suppress(Exception):
                src.follower.close()
        if self._store is not None:
            self._store.close()

    # -- reading and banning ------------------------------------------------------------------

    def _drain(self, indexes: list[int]) -> list[int]:
        """Read and handle what the ready sources have; return those with more to read."""
        more = []
        for i in indexes:
            src = self._sources[i]
            f = src.follower
            lines = (
                f.read_available(READ_BYTES) if isinstance(f, FileFollower) else f.read_available()
            )
            if lines:
                self._handle(src, lines)
                self._dirty.add(src.jail.name)
            if getattr(src.follower, "more", False):
                more.append(i)
        if self._dirty and time.monotonic() >= self._last_commit + COMMIT_EVERY:
            self._commit()
        return more

    def _commit(self) -> None:
        """Store positions and failure counts together (see :class:`BufferedState`)."""
        for src in self._sources:
            src.follower.commit()
        counts = {
            _counts_key(name): json.dumps(self._jails[name].counter.snapshot())
            for name in self._dirty
        }
        self._state.flush(counts)
        self._dirty.clear()
        self._last_commit = time.monotonic()

    def _handle(self, src: Source, lines: list[LogLine]) -> None:
        state = self._jails[src.jail.name]
        assert self._host is not None
        now = time.time()
        name = f"{src.spec.name} (jail {src.jail.name})"
        for i, found in self._host.process(src.index, [(ln.text, ln.time) for ln in lines], name):
            for f in found:
                if f.fid is None or f.nofail:
                    continue
                self._failure(state, f, lines[i].text, now)

    def _failure(self, state: JailState, f: Found, text: str, now: float) -> None:
        address = f.address
        if address is None:
            return
        jail = state.jail
        if _covers(state.ignore, address):
            return
        when = f.time if f.time is not None else now
        if when > now + 60:  # a clock or time zone problem: treat it as now
            when = now
        state.failures += 1
        decision = state.counter.add(address, when, [text])
        if decision is None:
            return
        if decision.last < now - jail.findtime:
            return  # an old attack read from the backlog: counted, but too late to ban
        self._ban(state, decision, now)

    def _ban(self, state: JailState, d: Decision, now: float) -> None:
        assert self._bans is not None
        jail = state.jail
        inc = jail.increment
        if any(
            b.jail == jail.name for b in self._store.list_bans(active_at=now, address=d.address)
        ):
            return  # banned already (lines read again after a crash, or written late)
        previous = self._store.count_bans(d.address, jail=None if inc.overalljails else jail.name)
        seconds = ban_duration(jail.bantime, previous, inc)
        reason = f"{d.failures} failures in {format_duration(max(d.last - d.first, 1))}"
        try:
            out = self._bans.ban(
                d.address,
                jail=jail.name,
                seconds=seconds,
                reason=reason,
                failures=d.failures,
                matches=d.matches,
                ports=jail.ports,
                protocol=jail.protocol,
            )
        except (ResponderError, StockadeError) as e:
            log.error("jail %s: banning %s failed: %s", jail.name, d.address, e)
            return
        if out.record is None:
            log.warning("jail %s: not banning %s: %s", jail.name, d.address, out.refused)
            return
        state.bans += 1
        span = "permanently" if seconds < 0 else f"for {format_duration(seconds)}"
        log.warning("jail %s: banned %s %s (%s)", jail.name, out.record.address, span, reason)
        self._store.add_alerts(
            [
                Alert(
                    part=PART,
                    kind="ban",
                    subject=out.record.address,
                    severity=Severity.MEDIUM,
                    host=self.ctx.host,
                    detail={
                        "jail": jail.name,
                        "failures": d.failures,
                        "reason": reason,
                        "bantime": seconds,
                        "previous_bans": previous,
                        "until": out.record.until,
                        "matches": list(d.matches),
                    },
                )
            ]
        )
        if self.on_ban is not None:
            self.on_ban(jail.name, out.record.address)

    def _housekeeping(self) -> None:
        if self._dirty:
            self._commit()
        now = time.time()
        for state in self._jails.values():
            state.counter.expire(now)
            state.ignore.refresh()
        if self._bans is not None:
            self._bans.responder.allowlist.refresh()


def _counts_key(jail: str) -> str:
    return f"logs.{jail}.counts"


def _covers(allowlist: Allowlist, address: str) -> bool:
    try:
        return allowlist.covers(address) is not None
    except ValueError:
        return False
