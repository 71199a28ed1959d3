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
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stockade.context import Context
from stockade.detectors.logs.bantime import ban_duration
from stockade.detectors.logs.engine import Failure, LineFilter
from stockade.detectors.logs.tickets import Decision, FailureCounter
from stockade.durations import format_duration
from stockade.errors import StockadeError
from stockade.model import Alert, Severity
from stockade.parts.logs.bans import BanService, build_allowlist, build_responder
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


@dataclass
class Source:
    jail: Jail
    follower: FileFollower | JournalFollower
    kind: str  # "files" or "journal"
    filter: LineFilter
    name: str
    more: bool = False


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
        self._executor: ThreadPoolExecutor | None = None
        self._store: Any = None
        self._bans: BanService | None = None
        self._jails: dict[str, JailState] = {}
        self._sources: list[Source] = []
        self._ready: set[int] = set()
        self._wake = asyncio.Event()
        self._said: set[str] = set()
        self.on_ban: Callable[[str, str], None] | None = None  # (jail, address), for tests

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="logs")
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
            if self._executor is not None:
                try:
                    await self._call(self._close)
                finally:
                    self._executor.shutdown(wait=False)

    def _on_ready(self, index: int) -> None:
        self._ready.add(index)
        self._wake.set()

    # -- start and stop ---------------------------------------------------------------------

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        jails = build_jails(self.cfg)
        allowlist = build_allowlist(self.cfg)
        responder = build_responder(self.cfg, allowlist)
        self._bans = BanService(self._store, responder, ipv6_prefix=self.cfg.ipv6_prefix)
        if not jails:
            log.info("no jail is enabled")
        for jail in jails:
            ignore = build_allowlist(self.cfg, jail.ignoreip)
            state = JailState(
                jail, FailureCounter(jail.maxretry, jail.findtime, jail.maxmatches), ignore
            )
            self._jails[jail.name] = state
            src = self._source(jail)
            if src is not None:
                state.sources.append(src)
                self._sources.append(src)
        restored = self._bans.restore(self._ports_of)
        if restored:
            log.info("restored %d active ban(s) in one batch", restored)

    def _source(self, jail: Jail) -> Source | None:
        """The jail's log files, or the journal when they do not exist (backend auto)."""
        prefix = f"logs.{jail.name}."
        files = None
        if jail.backend in ("auto", "files") and jail.logpath:
            files = FileFollower(
                list(jail.logpath),
                self._store,
                key_prefix=prefix + "file:",
                from_start=self.cfg.from_start,
                max_line=self.cfg.max_line,
            )
            if jail.backend == "files" or not files.missing() or not jail.journalmatch:
                for p in files.missing():
                    self._say(f"jail {jail.name}: {p} does not exist (yet); waiting for it")
                flt = LineFilter(jail.spec, usedns=jail.usedns)
                return Source(jail, files, "files", flt, ", ".join(jail.logpath))
            files.close()
        if jail.backend in ("auto", "journal") and jail.journalmatch:
            journal = JournalFollower(
                [list(g) for g in jail.journalmatch],
                self._store,
                key_prefix=prefix + "journal:",
                from_start=self.cfg.from_start,
            )
            why = journal.missing()
            if why:
                self._say(f"jail {jail.name}: no log file and no journal ({'; '.join(why)})")
                journal.close()
                return None
            journal.start()
            if jail.logpath:
                self._say(
                    f"jail {jail.name}: {', '.join(jail.logpath)} not found; reading the journal"
                )
            flt = LineFilter(jail.journal_spec, usedns=jail.usedns)
            name = "journal " + " + ".join(" ".join(g) for g in jail.journalmatch)
            return Source(jail, journal, "journal", flt, name)
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
            src.follower.commit()
            if getattr(src.follower, "more", False):
                more.append(i)
        return more

    def _handle(self, src: Source, lines: list[LogLine]) -> None:
        state = self._jails[src.jail.name]
        flt = src.filter
        now = time.time()
        for line in lines:
            try:
                if line.time is not None:
                    found = flt.process(line.text, when=line.time, when_text=str(line.time))
                else:
                    found = flt.process(line.text)
            except Exception as e:  # a filter bug must not stop the jail
                log.error("jail %s: cannot process a line: %s", src.jail.name, e)
                continue
            for f in found:
                if f.fid is None or f.nofail:
                    continue
                self._failure(state, f, line.text, now)

    def _failure(self, state: JailState, f: Failure, text: str, now: float) -> None:
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
        now = time.time()
        for state in self._jails.values():
            state.counter.expire(now)
            state.ignore.refresh()
        if self._bans is not None:
            self._bans.responder.allowlist.refresh()


def _covers(allowlist: Allowlist, address: str) -> bool:
    try:
        return allowlist.covers(address) is not None
    except ValueError:
        return False
