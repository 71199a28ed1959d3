"""The file integrity part inside ``stockade run``.

It builds the first baseline if there has never been one, runs a full check at start and on
schedule, and follows inotify events in between: a change is examined after a short debounce
and reported within about a second. All store and file work happens on the part's own worker
thread, so the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stockade.context import Context
from stockade.detectors.files.classify import PACKAGE_MISMATCH, PACKAGE_UPGRADE
from stockade.detectors.files.compare import Delta, compare_entry
from stockade.errors import IntegrityError, StockadeError
from stockade.model import Alert
from stockade.parts.base import WorkerThread
from stockade.parts.files.changed import CHANGED_STATE, changed_paths_json
from stockade.parts.files.report import Finding, Report, ReportNote, alerts_for, show_path
from stockade.parts.files.service import PART, Baseline, FilesService
from stockade.sensors.files.collect import SETUID_ATTRS, collect, encode
from stockade.sensors.files.dpkg import dpkg_busy
from stockade.sensors.files.inotify import TreeWatcher
from stockade.sensors.files.policy import Rule, best_rule, depth_below
from stockade.sensors.files.scan import effective_mask

log = logging.getLogger("stockade.files")
T = TypeVar("T")

#: Temporary names dpkg renames into place; the realtime watcher does not report them.
TRANSIENT_SUFFIXES = (b".dpkg-new", b".dpkg-tmp")
#: a file that disagrees with its package while dpkg is at work is looked at again once dpkg is
#: done (polled this often), but never held back longer than DEFER_MAX
DEFER_POLL = 0.5
DEFER_MAX = 600.0
#: Notes worth a line in the log (once each): what is absent, unreadable or not crossed.
_SAID = frozenset({"missing", "unreadable", "other-filesystem", "not-in-baseline"})


class Cancelled(Exception):
    """Raised inside a scan to abandon it when the daemon stops."""


class FilesPart:
    name = "files"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.files
        self._worker: WorkerThread | None = None
        self._svc: FilesService | None = None
        self._base: Baseline | None = None
        self._rules: list[Rule] = []
        self._watcher: TreeWatcher | None = None
        self._pending: set[bytes] = set()
        self._new_dirs: list[bytes] = []
        self._overflow = False
        self._wake = asyncio.Event()
        self._stopping = False
        self._reported: dict[bytes, str | None] = {}
        self._package_paths: set[bytes] = set()
        self._package_since = 0.0
        self._deferred: dict[bytes, float] = {}  # path -> when first held back
        self._full_waiting: tuple[str, float] | None = None  # a full check waiting for dpkg
        self._published: frozenset[bytes] | None = None  # the changed paths last stored
        self._checked: float | None = None  # when the last full check ended
        self._said: set[tuple[bytes, str]] = set()

    # -- plumbing --------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._worker is not None
        return await self._worker.call(fn, *args)

    def _progress(self, *_: int) -> None:
        if self._stopping:
            raise Cancelled

    @property
    def svc(self) -> FilesService:
        assert self._svc is not None
        return self._svc

    async def run(self) -> None:
        self._worker = WorkerThread("files")
        self._stopping = False
        loop = asyncio.get_running_loop()
        try:
            await self._call(self._open)
            if not await self._call(self._start):
                await self._wait_for_new_baseline()
                return
            next_check = time.monotonic() + self.cfg.schedule
            if self.cfg.realtime:
                n = await self._call(self._watch_all)
                assert self._watcher is not None
                loop.add_reader(self._watcher.fileno(), self._on_events)
                log.info("watching %d folders for changes in real time", n)
                if self._watcher.limit_reached:
                    log.warning(
                        "inotify watch limit reached (fs.inotify.max_user_watches); "
                        "some folders are checked only on schedule"
                    )
            while True:
                timeout = max(0.0, next_check - time.monotonic())
                if self._package_paths and self.cfg.auto_accept_package_changes:
                    timeout = min(
                        timeout,
                        max(0.0, self._package_since + self.cfg.package_settle - time.monotonic()),
                    )
                if self._deferred or self._full_waiting:
                    timeout = min(timeout, DEFER_POLL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                if time.monotonic() >= next_check:
                    await self._call(self._full_check, "scheduled")
                    next_check = time.monotonic() + self.cfg.schedule
                    continue
                if self._wake.is_set():
                    await asyncio.sleep(self.cfg.debounce)
                    self._wake.clear()
                    paths, dirs, overflow = self._pending, self._new_dirs, self._overflow
                    self._pending, self._new_dirs, self._overflow = set(), [], False
                    if overflow:
                        log.warning("inotify queue overflowed: rescanning everything")
                        await self._call(self._full_check, "after an inotify overflow")
                    else:
                        await self._call(self._examine, paths, dirs)
                waiting = bool(self._deferred or self._package_paths or self._full_waiting)
                if waiting and await self._call(self._dpkg_busy):
                    continue  # dpkg is at work: nothing is judged final until it is done
                if self._full_waiting:
                    await self._call(self._full_check, self._full_waiting[0])
                if self._deferred:
                    await self._call(self._examine, set(self._deferred), [])
                if (
                    self._package_paths
                    and self.cfg.auto_accept_package_changes
                    and time.monotonic() >= self._package_since + self.cfg.package_settle
                ):
                    await self._call(self._accept_packages)
        finally:
            self._stopping = True
            if self._watcher is not None:
                loop.remove_reader(self._watcher.fileno())
            if self._worker is not None:
                await self._worker.close(self._close)

    def _open(self) -> None:
        self._svc = FilesService(self.ctx, self.ctx.open_store())

    def _close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._svc is not None:
            self._svc.store.close()
            self._svc = None

    # -- start, full checks ------------------------------------------------------------

    def _start(self) -> bool:
        """Build or verify the baseline; False when it cannot be trusted."""
        svc = self.svc
        if not svc.exists():
            if svc.keys.exists:
                log.critical(
                    "the file baseline is gone but its key exists (%s): someone may have "
                    "removed it; rebuild it with `stockade files init` after checking "
                    "the host",
                    svc.keys.private_path,
                )
                return False
            roots = ", ".join(r.display for r in sorted(svc.policy.rules, key=lambda r: r.root))
            log.info("no file baseline yet: building one over %s", roots)
            res = svc.init(progress=self._progress)
            self._say(res.notes)
            log.info(
                "baseline version %d: %d entries in %.1f s, signed with key %s",
                res.version,
                res.entries,
                res.elapsed,
                res.key_id,
            )
        if not self._reload():
            return False
        if self.cfg.check_on_start:
            self._full_check("at start")
        return True

    def _reload(self) -> bool:
        try:
            self._base = self.svc.load()
        except IntegrityError as e:
            log.critical("%s", e)
            self._base = None
            return False
        self._rules = self.svc.rules_for(self._base.roots)
        return True

    async def _wait_for_new_baseline(self) -> None:
        """Idle until the baseline changes (re-init or restore), then let the supervisor restart."""
        seen = await self._call(lambda: self.svc.store.baseline_version(PART))
        while True:
            await asyncio.sleep(30)
            now = await self._call(lambda: self.svc.store.baseline_version(PART))
            if now != seen:
                log.info("the file baseline changed: starting again")
                return

    def _full_check(self, why: str) -> None:
        if self._dpkg_busy():
            now = time.monotonic()
            since = self._full_waiting[1] if self._full_waiting else now
            if now - since < DEFER_MAX:
                if self._full_waiting is None:
                    log.info("dpkg is at work: the full check (%s) waits until it is done", why)
                self._full_waiting = (why, since)
                return
        self._full_waiting = None
        try:
            report = self.svc.check(progress=self._progress)
        except IntegrityError as e:
            log.critical("%s", e)
            self._base = None
            raise
        c = report.counts
        log.info(
            "full check %s: %d changed, %d added, %d removed (%d by package upgrades); "
            "%d entries in %.1f s",
            why,
            c["changed"],
            c["added"],
            c["removed"],
            len(report.package_upgrades),
            report.entries,
            report.elapsed,
        )
        self._announce(alerts_for(report, self.ctx.host))
        self._reported = {f.path: _text(f) for f in report.findings}
        self._publish(checked=True)
        self._say(report.notes)
        self._reload()

    def _say(self, notes: list[ReportNote]) -> None:
        """Log what is absent or cannot be read, once per path and kind."""
        for n in notes:
            if n.kind in _SAID and (n.path, n.kind) not in self._said:
                self._said.add((n.path, n.kind))
                log.info("%s: %s", show_path(n.path) or "policy", n.message)

    def _accept_packages(self) -> None:
        paths = sorted(self._package_paths)
        self._package_paths.clear()
        try:
            findings, version = self.svc.accept(paths, only_packages=True, progress=self._progress)
        except StockadeError as e:
            log.error("could not accept package upgrades: %s", e)
            return
        if version is not None:
            log.info(
                "accepted %d package upgrade(s) into baseline version %d", len(findings), version
            )
            for f in findings:
                self._reported.pop(f.path, None)
        self._reload()
        self._publish()

    # -- realtime ----------------------------------------------------------------------

    def _watch_all(self) -> int:
        self._watcher = TreeWatcher(self.svc.policy)
        for rule in self._rules:
            self._watcher.watch_tree(rule)
        return self._watcher.count

    def _on_events(self) -> None:
        assert self._watcher is not None
        try:
            changed, dirs, overflow = self._watcher.read()
        except OSError as e:
            log.error("reading inotify events failed: %s", e)
            return
        self._pending |= changed
        self._new_dirs += dirs
        self._overflow |= overflow
        if changed or dirs or overflow:
            self._wake.set()

    def _rule(self, path: bytes) -> Rule | None:
        return best_rule(self._rules, path)

    def _examine(self, paths: set[bytes], new_dirs: list[bytes]) -> None:
        svc = self.svc
        current = svc.store.baseline_version(PART)
        loaded = self._base.version.version if self._base else None
        if (current is None or current.version != loaded) and not self._reload():
            return
        assert self._base is not None and self._watcher is not None
        for d in new_dirs:
            rule = self._rule(d)
            if rule is not None and not svc.policy.excluded(d, rule):
                paths.update(self._watcher.watch_tree(rule, d))
        entries = self._base.entries
        held = {p: self._deferred.pop(p) for p in paths if p in self._deferred}
        deltas: list[Delta] = []
        for path in sorted(paths):
            rule = self._rule(path)
            if rule is None or svc.policy.excluded(path, rule) or path.endswith(TRANSIENT_SUFFIXES):
                continue
            if rule.depth is not None and depth_below(rule.root, path) > rule.depth:
                continue
            try:
                st = os.lstat(path)
                text = collect(path, st, effective_mask(rule, st)).entry
            except OSError:
                text = None
            was_dir = '"type":"dir"' in (entries.get(path) or "")
            gone = [path, *_below(entries, path)] if text is None and was_dir else [path]
            for p in gone:
                now = text if p == path else None
                if p != path and os.path.lexists(p):
                    continue
                delta = compare_entry(p, entries.get(p), now, self._rule_attrs(p), SETUID_ATTRS)
                if delta is None:
                    self._reported.pop(p, None)
                    continue
                if p in self._reported and self._reported[p] == now:
                    continue
                self._reported[p] = now
                deltas.append(delta)
        if not deltas:
            self._publish()
            return
        findings = [svc.judge(d, self._rules) for d in deltas]
        report = Report(findings=self._hold_back(findings, held))
        self._publish()
        if not report.findings:
            return
        alerts = alerts_for(report, self.ctx.host)
        svc.record_alerts(alerts)
        self._announce(alerts)
        ups = [f.path for f in report.findings if f.verdict.classification == PACKAGE_UPGRADE]
        if ups:
            self._package_paths.update(ups)
            self._package_since = time.monotonic()

    def _publish(self, *, checked: bool = False) -> None:
        """Store the paths known to differ from the baseline (reported or held back), for the
        dashboard's files page: it compares those instead of the whole tree."""
        changed = frozenset(self._reported) | frozenset(self._deferred)
        if checked:
            self._checked = time.time()
        elif changed == self._published:
            return
        self._published = changed
        self.svc.store.set_state(
            CHANGED_STATE, changed_paths_json(changed, time.time(), self._checked)
        )

    def _dpkg_busy(self) -> bool:
        return self.svc.manifest is not None and dpkg_busy(self.cfg.dpkg_admindir)

    def _hold_back(self, findings: list[Finding], since: dict[bytes, float]) -> list[Finding]:
        """The findings to report now. A file that disagrees with its package while dpkg holds
        its lock is most likely half-way through an upgrade (the file written, the database
        not yet): it is held back and looked at again when dpkg is done, or after DEFER_MAX
        (``since``: when the paths looked at again were first held back)."""
        now = time.monotonic()
        if not any(f.verdict.classification == PACKAGE_MISMATCH for f in findings):
            return findings
        if not self._dpkg_busy():
            return findings
        out = []
        for f in findings:
            first = since.get(f.path, now)
            if f.verdict.classification == PACKAGE_MISMATCH and now - first < DEFER_MAX:
                if f.path not in since:
                    log.info(
                        "%s disagrees with package %s while dpkg is at work: looking again "
                        "when dpkg is done",
                        show_path(f.path),
                        f.verdict.package,
                    )
                self._deferred[f.path] = first
                self._reported.pop(f.path, None)
            else:
                out.append(f)
        return out

    def _rule_attrs(self, path: bytes) -> frozenset[str]:
        rule = self._rule(path)
        return rule.attrs if rule else frozenset()

    def _announce(self, alerts: list[Alert]) -> None:
        for a in alerts:
            log.warning(
                "ALERT %s %s %s: %s",
                a.severity,
                a.kind,
                a.subject,
                a.detail.get("reason", "") if isinstance(a.detail, dict) else "",
            )


def _below(entries: dict[bytes, str], top: bytes) -> list[bytes]:
    prefix = top + b"/"
    return [p for p in entries if p.startswith(prefix)]


def _text(f: Finding) -> str | None:
    return None if f.delta.new is None else encode(f.delta.new)
