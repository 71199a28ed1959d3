"""File integrity operations: init, check, accept, versions, diff, restore, show.

Every operation that reads the baseline verifies its signature first and refuses to go on if it
does not hold. Every operation that writes the baseline creates a new signed version; earlier
versions stay listable, diffable and restorable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stockade.baseline.keys import KeyRing
from stockade.baseline.signed import commit_signed, tampered_alert, verified_entries
from stockade.baseline.signing import Signer
from stockade.context import Context
from stockade.detectors.files.classify import Verdict, classify
from stockade.detectors.files.compare import Delta, compare_entry
from stockade.errors import IntegrityError, StockadeError, UsageError
from stockade.model import Alert, Event
from stockade.parts.files.report import (
    Finding,
    Report,
    ReportNote,
    alerts_for,
    json_path,
    show_path,
)
from stockade.sensors.files.attributes import ATTRIBUTES
from stockade.sensors.files.collect import SETUID_ATTRS, Collected, encode, file_md5
from stockade.sensors.files.dpkg import DpkgManifest
from stockade.sensors.files.policy import (
    Policy,
    Rule,
    best_rule,
    contains,
    depth_below,
    normalise,
)
from stockade.sensors.files.scan import ProgressFn, scan
from stockade.sensors.files.walk import Note
from stockade.store import BaselineVersion, Store

PART = "files"
_UNVERIFIABLE = ("unreadable", "other-filesystem")


@dataclass
class Baseline:
    """A verified baseline version held in memory: path → canonical entry text."""

    version: BaselineVersion
    entries: dict[bytes, str]
    meta: dict[str, Any]

    @property
    def roots(self) -> list[bytes]:
        return [normalise(r) for r in self.meta.get("roots", [])]


@dataclass
class InitResult:
    version: int
    entries: int
    notes: list[ReportNote]
    elapsed: float
    key_created: bool
    key_id: str
    dropped_roots: list[bytes]
    previous: int | None = None  # the version this one replaced
    absorbed: int = 0  # entries that differ from the previous version


class FilesService:
    """File integrity operations on one stockade instance's store."""

    def __init__(self, ctx: Context, store: Store, *, passphrase: bytes | None = None) -> None:
        self.ctx = ctx
        self.store = store
        self.cfg = ctx.config.files
        self.policy = Policy.from_config(self.cfg)
        self.keys = KeyRing(ctx, passphrase)
        self.manifest = DpkgManifest(self.cfg.dpkg_admindir) if self.cfg.package_check else None

    # -- reading the baseline ------------------------------------------------------------

    def load(self, version: int | None = None) -> Baseline:
        """The baseline (current, or ``version``), verified; raise IntegrityError if not."""
        v = self.store.baseline_version(PART, version)
        if v is None:
            if version is not None:
                raise UsageError(
                    f"baseline version {version} does not exist; see `stockade files versions`"
                )
            raise StockadeError("no file baseline yet; build one with `stockade files init`")
        try:
            got = verified_entries(self.store, PART, self.keys, v.version, what="the file baseline")
            assert got is not None
            v, entries = got
        except IntegrityError as e:
            self.record_alerts([tampered_alert(PART, str(self.ctx.store_path), e, self.ctx.host)])
            raise
        return Baseline(v, entries, json.loads(v.meta))

    def exists(self) -> bool:
        return self.store.baseline_version(PART) is not None

    # -- rules ---------------------------------------------------------------------------

    def rules_for(self, roots: Iterable[bytes]) -> list[Rule]:
        rules = []
        for root in roots:
            rule = self.policy.rule_for(root)
            rules.append(
                rule if rule is not None and rule.root == root else self.policy.cli_rule(root)
            )
        return rules

    @staticmethod
    def rule_of(rules: Sequence[Rule], path: bytes) -> Rule:
        rule = best_rule(rules, path)
        assert rule is not None, "every compared path lies under one of the rules"
        return rule

    # -- init ----------------------------------------------------------------------------

    def init(
        self, paths: Sequence[bytes] | None = None, progress: ProgressFn | None = None
    ) -> InitResult:
        """Build the baseline of the policy's trees, or of ``paths`` merged into the current one."""
        start = time.monotonic()
        current: dict[bytes, str] = {}
        old_roots: list[bytes] = []
        if self.exists():
            if paths:
                base = self.load()  # merging needs a baseline that verifies
                current, old_roots = base.entries, base.roots
            else:
                current = dict(self.store.baseline_entries(PART))
                v = self.store.baseline_version(PART)
                old_roots = _roots_of(v.meta) if v else []
        signer, created = self.keys.signer(create=not self.exists())
        if paths:
            scan_roots = list(dict.fromkeys(paths))
            roots = [r for r in old_roots if not any(contains(p, r) for p in scan_roots)]
            roots += [p for p in scan_roots if not any(contains(r, p) for r in roots)]
            new = {k: v for k, v in current.items() if not any(contains(p, k) for p in scan_roots)}
            dropped: list[bytes] = []
        else:
            scan_roots = [r.root for r in sorted(self.policy.rules, key=lambda r: r.root)]
            roots = scan_roots
            new = {}
            dropped = [r for r in old_roots if r not in scan_roots]
        notes = []
        for item in scan(
            self.policy, self.rules_for(scan_roots), workers=self.cfg.workers, progress=progress
        ):
            if isinstance(item, Note):
                notes.append(ReportNote(item.path, item.kind, item.message))
                continue
            if item.entry is not None:
                new[item.path] = item.entry
            if item.note:
                notes.append(ReportNote(item.path, item.note, item.message or ""))
        changes: dict[bytes, str | None] = {k: v for k, v in new.items() if current.get(k) != v}
        changes.update({k: None for k in current.keys() - new.keys()})
        note = "init" if not paths else "init " + " ".join(show_path(p) for p in scan_roots)
        version = self._commit(new, changes, roots, note, signer, current)
        previous = version - 1 if version > 1 else None
        absorbed = len(changes) if previous is not None else 0
        return InitResult(
            version,
            len(new),
            notes,
            time.monotonic() - start,
            created,
            signer.key_id,
            dropped,
            previous,
            absorbed,
        )

    def _commit(
        self,
        entries: dict[bytes, str],
        changes: dict[bytes, str | None],
        roots: Sequence[bytes],
        note: str,
        signer: Signer,
        replaced: Container[bytes],
    ) -> int:
        meta = json.dumps(
            {"roots": sorted(json_path(r) for r in roots), "host": self.ctx.host},
            sort_keys=True,
        )
        return commit_signed(
            self.store,
            PART,
            entries,
            changes,
            signer,
            replaced=replaced,
            note=note,
            meta=meta,
            keep=self.cfg.keep_versions,
        )

    # -- check ---------------------------------------------------------------------------

    def compare(
        self,
        base: Baseline,
        paths: Sequence[bytes] | None = None,
        progress: ProgressFn | None = None,
    ) -> Report:
        """Scan ``paths`` (default: every root of the baseline) and compare with ``base``."""
        start = time.monotonic()
        roots = base.roots
        report = Report(version=base.version.version)
        if paths:
            for p in paths:
                if not any(contains(r, p) for r in roots):
                    shown = show_path(p)
                    raise UsageError(
                        f"{shown} is not in the baseline; add it with `stockade files init {shown}`"
                    )
            targets = list(dict.fromkeys(paths))
        else:
            targets = roots
            missing = sorted(
                r.display for r in self.policy.rules if not any(contains(b, r.root) for b in roots)
            )
            if missing:
                report.notes.append(
                    ReportNote(
                        b"",
                        "not-in-baseline",
                        f"{len(missing)} path(s) of the policy are not in the baseline "
                        f"({', '.join(missing)}); `stockade files init` adds them",
                    )
                )
        rules = self.rules_for(targets)
        old = (
            {k: v for k, v in base.entries.items() if any(contains(t, k) for t in targets)}
            if paths
            else dict(base.entries)
        )
        unverified: list[bytes] = []
        deltas: list[Delta] = []
        for item in scan(self.policy, rules, workers=self.cfg.workers, progress=progress):
            if isinstance(item, Note):
                report.notes.append(ReportNote(item.path, item.kind, item.message))
                if item.kind in _UNVERIFIABLE:
                    unverified.append(item.path)
                continue
            self._compare_one(item, old, rules, deltas, report)
        for path, text in old.items():  # in the baseline, not found now
            rule = self.rule_of(rules, path)
            if self._out_of_scope(path, rule, unverified):
                continue
            d = compare_entry(path, text, None, rule.attrs, SETUID_ATTRS)
            if d is not None:
                deltas.append(d)
        findings = [self.judge(d, rules) for d in deltas]
        # the worst first, then by path
        report.findings = sorted(findings, key=lambda f: (-f.verdict.severity, f.path))
        report.elapsed = time.monotonic() - start
        return report

    def _compare_one(
        self,
        item: Collected,
        old: dict[bytes, str],
        rules: Sequence[Rule],
        deltas: list[Delta],
        report: Report,
    ) -> None:
        report.entries += 1
        report.hashed_bytes += item.hashed
        if item.note:
            report.notes.append(ReportNote(item.path, item.note, item.message or ""))
        if item.entry is None:
            return  # vanished: if it was in the baseline, it is reported as removed
        before = old.pop(item.path, None)
        if before == item.entry:
            return
        rule = self.rule_of(rules, item.path)
        d = compare_entry(item.path, before, item.entry, rule.attrs, SETUID_ATTRS)
        if d is not None:
            deltas.append(d)

    def _out_of_scope(self, path: bytes, rule: Rule, unverified: list[bytes]) -> bool:
        """True when a baseline entry was not looked at on purpose (policy) or could not be."""
        if self.policy.excluded(path, rule):
            return True
        if rule.depth is not None and depth_below(rule.root, path) > rule.depth:
            return True
        return any(path != u and contains(u, path) for u in unverified)

    def judge(self, d: Delta, rules: Sequence[Rule]) -> Finding:
        rule = self.rule_of(rules, d.path)
        owner = md5 = None
        # a package upgrade rewrites every file of the package, changed or not: look up every
        # changed regular file, not only those whose content changed
        if self.manifest is not None and d.new is not None and d.new.get("type") == "file":
            owner = self.manifest.owner(d.path)
            if owner is not None:
                md5 = file_md5(d.path)
        verdict: Verdict = classify(d, rule.severity, self.policy.setuid_severity, owner, md5)
        return Finding(d, verdict, rule.display)

    def check(
        self,
        paths: Sequence[bytes] | None = None,
        progress: ProgressFn | None = None,
        *,
        record: bool = True,
    ) -> Report:
        """Verify the baseline, compare, record alerts, and auto-accept package upgrades if set."""
        base = self.load()
        report = self.compare(base, paths, progress)
        if self.cfg.auto_accept_package_changes and report.package_upgrades:
            try:
                report.accepted_version = self._apply(
                    base, report.package_upgrades, "auto-accept package upgrades"
                )
            except StockadeError as e:
                report.notes.append(ReportNote(b"", "auto-accept-failed", str(e)))
        if record:
            self.record_alerts(alerts_for(report, self.ctx.host))
            self.store.add_events(
                [
                    Event(
                        part=PART,
                        kind="check",
                        subject="files check",
                        detail=report.summary(),
                        host=self.ctx.host,
                    )
                ]
            )
            self.store.set_state(
                "files.last_check", json.dumps({"time": time.time(), **report.summary()})
            )
        return report

    def record_alerts(self, alerts: list[Alert]) -> None:
        if alerts:
            self.store.add_alerts(alerts)

    # -- accept, versions, restore ---------------------------------------------------------

    def accept(
        self,
        paths: Sequence[bytes] | None = None,
        *,
        only_packages: bool = False,
        progress: ProgressFn | None = None,
    ) -> tuple[list[Finding], int | None]:
        """Take the current state of ``paths`` (default: everything) into a new version."""
        base = self.load()
        report = self.compare(base, paths, progress)
        findings = report.package_upgrades if only_packages else report.findings
        if not findings:
            return [], None
        what = (
            "packages"
            if only_packages
            else (" ".join(show_path(p) for p in paths) if paths else "all")
        )
        version = self._apply(base, findings, f"accept {what}")
        self.store.add_events(
            [
                Event(
                    part=PART,
                    kind="accept",
                    subject=what,
                    detail={"version": version, "count": len(findings)},
                    host=self.ctx.host,
                )
            ]
        )
        return findings, version

    def _apply(self, base: Baseline, findings: Sequence[Finding], note: str) -> int:
        signer, _ = self.keys.signer()
        changes: dict[bytes, str | None] = {}
        for f in findings:
            changes[f.path] = None if f.delta.new is None else encode(f.delta.new)
        entries = dict(base.entries)
        for k, v in changes.items():
            if v is None:
                entries.pop(k, None)
            else:
                entries[k] = v
        return self._commit(entries, changes, base.roots, note, signer, base.entries)

    def versions(self) -> list[BaselineVersion]:
        return self.store.baseline_versions(PART)

    def diff(self, v1: int, v2: int | None = None) -> list[Delta]:
        a = self.load(v1)
        b = self.load(v2)
        out = []
        every = frozenset(ATTRIBUTES)
        for path in sorted(a.entries.keys() | b.entries.keys()):
            d = compare_entry(path, a.entries.get(path), b.entries.get(path), every)
            if d is not None:
                out.append(d)
        return out

    def restore(self, version: int) -> int:
        old = self.load(version)
        cur = self.load()
        changes: dict[bytes, str | None] = {
            k: v for k, v in old.entries.items() if cur.entries.get(k) != v
        }
        changes.update({k: None for k in cur.entries.keys() - old.entries.keys()})
        signer, _ = self.keys.signer()
        return self._commit(
            old.entries, changes, old.roots, f"restore version {version}", signer, cur.entries
        )

    def show(self, path: bytes, version: int | None = None) -> tuple[Baseline, str | None]:
        base = self.load(version)
        return base, base.entries.get(path)


def _roots_of(meta: str) -> list[bytes]:
    """Roots named in a version's metadata; empty when it cannot be read (a damaged store)."""
    try:
        roots = json.loads(meta).get("roots", [])
        return [normalise(r) for r in roots if isinstance(r, str)]
    except (ValueError, TypeError, AttributeError):
        return []
