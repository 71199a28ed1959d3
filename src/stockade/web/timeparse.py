"""Times in the dashboard's filters: an epoch number, an ISO 8601 date or time, or a duration
meaning "that long ago" (``24h``); parsed without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from stockade.durations import parse_duration


def parse_time(text: str, now: float) -> float:
    """Seconds since the epoch for ``text``; ValueError saying what is accepted."""
    s = text.strip()
    if not s:
        raise ValueError("empty time")
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        pass
    else:
        if dt.tzinfo is None:
            dt = dt.astimezone()  # local time, as the pages show it
        return dt.timestamp()
    try:
        return now - parse_duration(s)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use seconds since the epoch, an ISO 8601 date "
            "(2026-11-26T18:00) or a duration ago (24h)"
        ) from None


def iso(ts: float | None) -> str:
    """A time for the pages (UTC, to the second); empty for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
