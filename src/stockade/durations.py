"""Parse and print durations (``90s``, ``10m``, ``1h30m``, ``2d``) and timestamps."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | float) -> float:
    """Return seconds for ``text``; raise ValueError with a hint when it is malformed."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 30s, 10m, 1h or 2d")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    s = text.strip().lower().replace(" ", "")
    if s and s.replace(".", "", 1).isdigit():
        return float(s)
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"{text!r} is not a duration; write for example 30s, 10m, 1h or 2d")
    return total


def format_duration(seconds: float) -> str:
    """Return a short human form: ``1h30m``, ``45s``, ``250ms``."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    rest = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def iso(ts: float) -> str:
    """ISO 8601 in UTC with second precision, e.g. ``2026-11-26T14:10:59Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ns(ns: int) -> str:
    """ISO 8601 in UTC with nanoseconds, for file times."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"
