"""What the dashboard shows, computed from store records without I/O: alert filters, alert
counts over time by severity and part, top offending addresses, and the JSON forms of alerts
and bans."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stockade.model import Alert, BanRecord, Severity

PARTS = ("files", "logs", "sockets", "scan")


@dataclass(frozen=True)
class AlertFilter:
    since: float | None = None
    until: float | None = None
    severity: Severity | None = None  # this severity or worse
    part: str | None = None
    text: str = ""

    def keeps(self, a: Alert) -> bool:
        if self.since is not None and a.time < self.since:
            return False
        if self.until is not None and a.time > self.until:
            return False
        if self.severity is not None and a.severity < self.severity:
            return False
        if self.part and a.part != self.part:
            return False
        if self.text:
            needle = self.text.casefold()
            hay = " ".join((a.kind, a.subject, str(a.detail.get("message", "")), a.host))
            if needle not in hay.casefold():
                return False
        return True


def filter_alerts(alerts: Iterable[Alert], f: AlertFilter) -> list[Alert]:
    return [a for a in alerts if f.keeps(a)]


def alert_json(a: Alert, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "time": a.time,
        "host": a.host,
        "part": a.part,
        "kind": a.kind,
        "subject": a.subject,
        "severity": str(a.severity),
        "message": str(a.detail.get("message", "")),
        "acknowledged": a.acknowledged,
    }
    if detail:
        out["detail"] = dict(a.detail)
    return out


def ban_json(b: BanRecord, now: float) -> dict[str, Any]:
    return {
        "id": b.id,
        "address": b.address,
        "jail": b.jail,
        "created": b.created,
        "until": b.until,
        "reason": b.reason,
        "source": b.source,
        "failures": b.failures,
        "matches": list(b.matches),
        "lifted": b.lifted,
        "lifted_by": b.lifted_by,
        "active": b.active(now),
    }


def buckets(start: float, end: float, count: int) -> list[float]:
    """``count`` equal bucket start times covering [start, end)."""
    if count < 1 or end <= start:
        return []
    width = (end - start) / count
    return [start + i * width for i in range(count)]


def timeline(alerts: Iterable[Alert], start: float, end: float, count: int) -> dict[str, Any]:
    """Alert counts in ``count`` buckets from ``start`` to ``end``, by severity and by part."""
    starts = buckets(start, end, count)
    by_sev = {str(s): [0] * len(starts) for s in Severity}
    by_part: dict[str, list[int]] = {p: [0] * len(starts) for p in PARTS}
    if starts:
        width = (end - start) / count
        for a in alerts:
            if not start <= a.time < end:
                continue
            i = min(int((a.time - start) / width), count - 1)
            by_sev[str(a.severity)][i] += 1
            by_part.setdefault(a.part, [0] * len(starts))[i] += 1
    return {"start": start, "end": end, "buckets": starts, "severity": by_sev, "part": by_part}


def top_offenders(bans: Sequence[BanRecord], n: int = 10) -> list[dict[str, Any]]:
    """The addresses banned most often, with their ban count and latest jail and reason."""
    counts = Counter(b.address for b in bans)
    latest: dict[str, BanRecord] = {}
    for b in bans:
        if b.address not in latest or b.created >= latest[b.address].created:
            latest[b.address] = b
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -latest[kv[0]].created, kv[0]))
    return [
        {
            "address": addr,
            "bans": c,
            "failures": sum(b.failures for b in bans if b.address == addr),
            "jail": latest[addr].jail,
            "last": latest[addr].created,
        }
        for addr, c in ranked[:n]
    ]


def severity_counts(alerts: Iterable[Alert]) -> dict[str, int]:
    c = Counter(str(a.severity) for a in alerts)
    return {str(s): c.get(str(s), 0) for s in Severity}


def chart_bars(series: dict[str, list[int]], height: float = 100.0) -> list[dict[str, Any]]:
    """Stacked bars for an SVG chart: for each bucket, its segments (name, y, h) bottom-up,
    scaled so the tallest bucket fills ``height``."""
    n = max((len(v) for v in series.values()), default=0)
    totals = [sum(v[i] for v in series.values() if i < len(v)) for i in range(n)]
    top = max(totals, default=0) or 1
    bars = []
    for i in range(n):
        y = height
        segs = []
        for name, values in series.items():
            v = values[i] if i < len(values) else 0
            if v:
                h = v / top * height
                y -= h
                segs.append({"name": name, "count": v, "y": round(y, 2), "h": round(h, 2)})
        bars.append({"index": i, "total": totals[i], "segments": segs})
    return bars
