"""What a notification says: one alert, or a summary of many (pure, no I/O).

A summary counts the alerts by part and kind and by severity, names the time span, and carries a
sample of the first few, so a burst of 5,000 alerts is one readable message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stockade.durations import iso
from stockade.model import Alert, Severity

#: alerts shown in full in a summary
SAMPLE = 10
#: what a command channel's arguments may hold
PLACEHOLDERS = ("severity", "part", "kind", "subject", "message", "count", "host")


def describe(alert: Alert) -> str:
    """The alert in one line: its own message when it has one."""
    said = alert.detail.get("message") if isinstance(alert.detail, dict) else None
    text = said if isinstance(said, str) and said else f"{alert.kind} {alert.subject}"
    return " ".join(text.split())  # one line whatever the detail held


def alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "time": iso(alert.time),
        "host": alert.host,
        "part": alert.part,
        "kind": alert.kind,
        "subject": alert.subject,
        "severity": str(alert.severity),
        "message": describe(alert),
        "detail": dict(alert.detail),
    }


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: ``count`` alerts, of which ``sample`` are given in full."""

    host: str
    count: int
    severity: Severity
    sample: tuple[Alert, ...]
    by_kind: tuple[tuple[str, str, int], ...]  # (part, kind, count), most frequent first
    by_severity: tuple[tuple[str, int], ...]  # worst first
    first: float
    last: float

    @property
    def single(self) -> Alert | None:
        return self.sample[0] if self.count == 1 else None

    @property
    def title(self) -> str:
        one = self.single
        if one is not None:
            return f"[stockade {self.host}] {one.severity}: {describe(one)}"[:200]
        kinds = ", ".join(f"{n} {p}/{k}" for p, k, n in self.by_kind[:3])
        more = ", ..." if len(self.by_kind) > 3 else ""
        return f"[stockade {self.host}] {self.count} alerts, worst {self.severity}: {kinds}{more}"

    @property
    def parts(self) -> str:
        return ",".join(sorted({p for p, _, _ in self.by_kind}))

    def text(self) -> str:
        """The plain-text body (mail, chat)."""
        one = self.single
        if one is not None:
            lines = [
                describe(one),
                "",
                f"host:     {one.host or self.host}",
                f"time:     {iso(one.time)}",
                f"part:     {one.part}",
                f"kind:     {one.kind}",
                f"subject:  {one.subject}",
                f"severity: {one.severity}",
                f"alert id: {one.id}",
            ]
            if one.detail:
                lines += ["", json.dumps(dict(one.detail), indent=2, sort_keys=True, default=str)]
            return "\n".join(lines) + "\n"
        lines = [
            f"{self.count} alerts on {self.host} from {iso(self.first)} to {iso(self.last)}.",
            "",
            "by part and kind:",
            *(f"  {n:>7}  {p}/{k}" for p, k, n in self.by_kind),
            "",
            "by severity:",
            *(f"  {n:>7}  {s}" for s, n in self.by_severity),
            "",
            f"the first {len(self.sample)}:",
            *(f"  {iso(a.time)} {a.severity} {a.part}/{a.kind} {describe(a)}" for a in self.sample),
            "",
            "stockade alerts lists them all.",
        ]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "title": self.title,
            "count": self.count,
            "severity": str(self.severity),
            "first": iso(self.first),
            "last": iso(self.last),
            "by_kind": [{"part": p, "kind": k, "count": n} for p, k, n in self.by_kind],
            "by_severity": dict(self.by_severity),
            "alerts": [alert_dict(a) for a in self.sample],
        }

    def placeholders(self) -> dict[str, str]:
        one = self.single
        return {
            "severity": str(self.severity),
            "part": one.part if one else self.parts,
            "kind": one.kind if one else "summary",
            "subject": one.subject if one else f"{self.count} alerts",
            "message": describe(one) if one else self.title,
            "count": str(self.count),
            "host": self.host,
        }


def build(alerts: Sequence[Alert], host: str) -> Message:
    """The message for ``alerts`` (one or more, oldest first)."""
    if not alerts:
        raise ValueError("a message needs at least one alert")
    kinds = Counter((a.part, a.kind) for a in alerts)
    sev = Counter(a.severity for a in alerts)
    return Message(
        host=host,
        count=len(alerts),
        severity=max(sev),
        sample=tuple(alerts[:SAMPLE]),
        by_kind=tuple((p, k, n) for (p, k), n in kinds.most_common()),
        by_severity=tuple((str(s), sev[s]) for s in sorted(sev, reverse=True)),
        first=min(a.time for a in alerts),
        last=max(a.time for a in alerts),
    )
