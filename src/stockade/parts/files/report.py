"""The result of a check: findings (a delta with its verdict) and notes, and their forms."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from stockade.detectors.files.classify import PACKAGE_UPGRADE, Verdict
from stockade.detectors.files.compare import Delta
from stockade.model import Alert, Severity


def show_path(path: bytes) -> str:
    """A path for people: bytes that are not UTF-8 appear as ``\\xNN``."""
    return path.decode("utf-8", "backslashreplace")


def json_path(path: bytes) -> str:
    """A path for JSON: not-UTF-8 bytes become lone surrogates, which JSON escapes losslessly
    (``\\udcff``); ``os.fsencode`` gives the original bytes back."""
    return os.fsdecode(path)


@dataclass(slots=True)
class Finding:
    delta: Delta
    verdict: Verdict
    rule: str

    @property
    def path(self) -> bytes:
        return self.delta.path

    def to_json(self) -> dict[str, Any]:
        d = self.delta
        out: dict[str, Any] = {
            "path": json_path(d.path),
            "change": d.change,
            "attributes": {a.name: {"old": a.old, "new": a.new} for a in d.attributes},
            "severity": str(self.verdict.severity),
            "classification": self.verdict.classification,
            "reason": self.verdict.reason,
            "rule": self.rule,
        }
        if self.verdict.package:
            out["package"] = self.verdict.package
        if d.change == "added":
            out["new"] = d.new
        elif d.change == "removed":
            out["old"] = d.old
        return out


@dataclass(frozen=True, slots=True)
class ReportNote:
    path: bytes
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"path": json_path(self.path), "note": self.kind, "message": self.message}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[ReportNote] = field(default_factory=list)
    entries: int = 0
    hashed_bytes: int = 0
    elapsed: float = 0.0
    version: int = 0
    accepted_version: int | None = None

    @property
    def package_upgrades(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict.classification == PACKAGE_UPGRADE]

    @property
    def counts(self) -> dict[str, int]:
        c = {"added": 0, "removed": 0, "changed": 0}
        for f in self.findings:
            c[f.delta.change] += 1
        return c

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "package_upgrades": len(self.package_upgrades),
            "notes": len(self.notes),
            "entries": self.entries,
            "bytes_hashed": self.hashed_bytes,
            "seconds": round(self.elapsed, 3),
            "baseline_version": self.version,
        }


def alerts_for(report: Report, host: str) -> list[Alert]:
    """One alert per finding, except package upgrades, which become one summary alert."""
    alerts = []
    upgrades = []
    for f in report.findings:
        if f.verdict.classification == PACKAGE_UPGRADE:
            upgrades.append(f)
            continue
        alerts.append(
            Alert(
                part="files",
                kind=f"file-{f.delta.change}",
                subject=show_path(f.path),
                severity=f.verdict.severity,
                detail=f.to_json(),
                host=host,
            )
        )
    if upgrades:
        packages = sorted({f.verdict.package or "?" for f in upgrades})
        alerts.append(
            Alert(
                part="files",
                kind="package-upgrade",
                subject=f"{len(upgrades)} files changed by package upgrades",
                severity=Severity.LOW,
                detail={
                    "count": len(upgrades),
                    "packages": packages[:200],
                    "paths": [json_path(f.path) for f in upgrades[:500]],
                    "accepted": report.accepted_version is not None,
                },
                host=host,
            )
        )
    return alerts
