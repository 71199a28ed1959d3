"""Date detection in log lines, with the semantics of fail2ban's date detector.

``DateDetector(pattern)`` finds the date of a log line and returns it as epoch seconds with
its span in the line.  ``pattern`` is a fail2ban ``datepattern`` value: one or more lines of
strptime-like patterns (``%Y-%m-%d %H:%M:%S``, fail2ban's ``%Ex..`` extensions, regexes
containing directives), ``EPOCH``/``LEPOCH``/``TAI64N``, ``{^LN-BEG}`` (the default formats,
anchored at the line start), ``{DEFAULT}``, ``{NONE}`` and ``{DATE}`` (the default formats put
into a regex).  Without a pattern, fail2ban's default formats are searched.

As in fail2ban, the detector keeps the templates ordered by use: the template that matched
the previous line is tried first (only in the same place of the line when it is not anchored),
and a template that keeps winning moves towards the front.  A date without a year gets the
year of "now", or the previous year when it would be more than a day ahead; a time without a
date gets today's date, or yesterday's when it would be ahead of now.  Dates carry the
process's local time zone unless they state an offset or ``default_tz`` is given.

Conversions are cached per template (consecutive lines often share a second), so a warmed-up
detector costs one regex search and a dictionary look-up per line.  A detector has state and
is meant for one log stream in one thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from re import Match

from .dates_templates import (
    PATTERN,
    DatePatternError,
    LocalTime,
    Template,
    date_templates,
    default_templates,
    parse_zone,
    template_for,
)

__all__ = ["DateDetector", "DateMatch", "DatePatternError"]


@dataclass(frozen=True, slots=True)
class DateMatch:
    """A date found in a line."""

    time: float  # epoch seconds (fractions kept)
    start: int  # span of the date text in the line
    end: int


_FAR = 0x7FFFFFFF  # "no distance yet"
_UNUSED_AFTER = 300.0  # a template unused this long gives its place to a newly used one
_LAST_DATE_AGE = 60.0  # an empty date stands for the last date when it is this recent
_CACHE_MAX = 2048  # conversions kept per template before the cache starts over
_ALWAYS = (-math.inf, math.inf)
# (date text, valid from, valid until, result, span of the date): the last plain conversion
_Memo = tuple[str, float, float, DateMatch, tuple[int, int]]
_NO_MEMO: _Memo = ("", 0.0, 0.0, DateMatch(0.0, 0, 0), (-1, -1))


class _Slot:
    """A template as used by one detector: its hits, place and conversion caches."""

    __slots__ = (
        "anchored",
        "cache",
        "distance",
        "find",
        "last_used",
        "matched",
        "memo",
        "search",
        "tpl",
        "wins",
    )

    def __init__(self, tpl: Template) -> None:
        self.tpl = tpl
        self.search = tpl.search  # with a position range (the place of the last date)
        self.find = tpl.search_full  # the whole line
        self.anchored = tpl.anchored
        self.wins = 0  # lines whose date this template gave
        self.matched = False  # has matched a line at all (not necessarily won)
        self.last_used = 0.0
        self.distance = _FAR  # where in the line it found the date last time
        # date text -> (valid from, valid until, result): "now" must be in the range; a date
        # without a year depends on now and holds for the current second of now only
        self.cache: dict[str, tuple[float, float, DateMatch]] = {}
        self.memo = _NO_MEMO  # the last result, for the next line with the same date

    def weight(self) -> float:
        return self.wins * self.tpl.weight / max(1, self.distance)


def _field_values(tpl: Template, m: Match[str]) -> tuple[str | None, ...]:
    if tpl.kind != PATTERN:
        return (m.group(tpl.epoch_group),)
    groups = tpl.field_groups
    if len(groups) == 1:
        return (m.group(groups[0]),)
    if not groups:
        return ()
    values: tuple[str | None, ...] = m.group(*groups)
    return values


class DateDetector:
    """Finds and converts the date of log lines; see the module documentation.

    ``pattern``: a fail2ban ``datepattern`` value (several patterns one per line) or None for
    the default formats.  ``default_tz``: the zone of dates that state none (``"UTC"``,
    ``"+0200"``, ``"CET+01"``...), instead of the local zone.  ``now``: the clock that
    year-less and date-less dates are placed against.  A bad pattern or zone raises
    DatePatternError.
    """

    __slots__ = (
        "_at_end",
        "_at_start",
        "_before_end",
        "_before_start",
        "_first_unused",
        "_last_end",
        "_last_idx",
        "_last_start",
        "_last_time",
        "_local",
        "_now",
        "_slots",
        "_tz",
    )

    def __init__(
        self,
        pattern: str | None = None,
        *,
        default_tz: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._now = now
        self._tz: int | None = None
        if default_tz is not None:
            try:
                self._tz = parse_zone(default_tz.strip())
            except ValueError as e:
                raise DatePatternError(f"default_tz: {e}") from None
        self._slots: list[_Slot] = []
        seen: set[tuple[int, str]] = set()

        def add(templates: Iterable[Template], ignore_duplicates: bool) -> None:
            for tpl in templates:
                if tpl.ident in seen:
                    if ignore_duplicates:
                        continue
                    raise DatePatternError(f"datepattern {tpl.pattern!r} is given twice")
                seen.add(tpl.ident)
                self._slots.append(_Slot(tpl))

        for raw in (pattern or "").split("\n"):
            line = raw.strip()
            if not line:
                continue
            key = line if "%" in line else line.upper()
            if key in ("{^LN-BEG}", "{DEFAULT}"):
                everything = key == "{DEFAULT}"
                chosen = [t for t in default_templates() if everything or t.line_begin]
                add(chosen, bool(self._slots))
            elif "{DATE}" in key:
                add(date_templates(line), bool(self._slots))
            elif key == "{NONE}":
                add([template_for("{UNB}^")], False)
            else:
                add([template_for(line)], False)
        if not self._slots:
            add(default_templates(), False)

        self._last_idx = -1  # the template that gave the last date
        self._last_start = 1  # where that date was (start and end of the whole match) ...
        self._last_end = _FAR
        self._before_start = self._at_start = ""  # ... and the characters around it
        self._before_end = self._at_end = ""
        self._first_unused = 0  # templates before this index have all won at least once
        self._last_time = 0.0  # the last date converted
        self._local = LocalTime()

    def __repr__(self) -> str:
        names = ", ".join(s.tpl.name for s in self._slots[:3])
        more = f", ... ({len(self._slots)} templates)" if len(self._slots) > 3 else ""
        return f"DateDetector({names}{more})"

    def match(self, line: str) -> DateMatch | None:
        """The date of a line, or None when the line has no (valid) date.

        A template whose date group matched empty text (``{NONE}``, or a pattern such as
        ``^WARNING:()**`` for continuation lines) gives the last date when it is less than a
        minute older than now, else now, with an empty span.
        """
        idx = self._last_idx
        if idx >= 0:
            # the usual case, kept short: the template of the last line, anchored, again
            slot = self._slots[idx]
            if slot.anchored:
                hit = slot.find(line)
                if hit is not None:
                    now = self._now()
                    slot.wins += 1
                    slot.last_used = now
                    self._last_start, self._last_end = hit.span()
                    return self._convert(slot, hit, line, now)
        now = self._now()
        slots = self._slots
        skip = -1
        reserve: tuple[Match[str], int, int] | None = None
        m: Match[str] | None = None
        if idx >= 0:
            slot = slots[idx]
            if slot.anchored:
                m = slot.find(line)
                skip = idx
            else:
                start = self._last_start
                end = self._last_end
                at = self._at_start
                before = self._before_end
                if (
                    line[start - 1 : start] == self._before_start
                    or (line[start : start + 1] == at and not at.isalnum())
                ) and (
                    line[end : end + 1] == self._at_end
                    or (line[end - 1 : end] == before and not before.isalnum())
                ):
                    m = slot.search(line, start, end)
                else:
                    m = slot.find(line)
                    skip = idx
                if m is not None and len(slots) > 1 and (m.start() != start or m.end() != end):
                    # found elsewhere: maybe another template is right now; keep it in reserve
                    reserve = (m, m.start(), idx)
                    m = None
        if m is None:
            m, idx = self._search(line, skip, reserve)
            if m is None:
                return None

        slot = slots[idx]
        start, end = m.span()
        slot.wins += 1
        slot.last_used = now
        slot.distance = start
        if self._first_unused == idx:
            self._first_unused += 1
        self._last_start = start
        self._last_end = end
        if not slot.anchored:
            self._before_start = line[start - 1 : start]
            self._at_start = line[start : start + 1]
            self._before_end = line[end - 1] if line else ""
            self._at_end = line[end : end + 1]
        if idx and idx != self._last_idx:
            idx = self._reorder(idx)
        self._last_idx = idx
        # the usual case first: the same date text as on the previous line of this template
        span = m.span(1)
        memo = slot.memo
        if memo[4] == span and line.startswith(memo[0], span[0]) and memo[1] <= now < memo[2]:
            self._last_time = memo[3].time
            return memo[3]
        return self._convert(slot, m, line, now)

    def _search(
        self, line: str, skip: int, reserve: tuple[Match[str], int, int] | None
    ) -> tuple[Match[str] | None, int]:
        """Try the templates in order; the first good match wins.

        A match further into the line than this template's last date (or than the last date
        found at all) may be a date-like text in the message: it is only kept in reserve,
        and the nearest reserve wins if no template matches where expected.
        """
        slots = self._slots
        count = len(slots)
        last_start = self._last_start
        for i in range(count):
            if i == skip:
                continue
            slot = slots[i]
            m = slot.find(line)
            if m is None:
                continue
            slot.matched = True
            if i + 1 == count or slot.anchored:
                return m, i
            distance = m.start()
            if distance == 0 and slot.wins and not slots[i + 1].matched:
                return m, i
            if distance > slot.distance or distance > last_start:
                if reserve is None or distance < reserve[1]:
                    reserve = (m, distance, i)
                continue
            return m, i
        if reserve is None:
            return None, -1
        return reserve[0], reserve[2]

    def _reorder(self, num: int) -> int:
        """Move a template that won towards the front; returns its new index.

        It jumps to the first template that never won (or halfway to the front) when it
        weighs more (wins, preference, nearness to the line start) or that place was unused
        for five minutes; else it moves one place up on the same condition, or stays.
        """
        slots = self._slots
        slot = slots[num]
        weight = slot.weight()
        unused_since = slot.last_used - _UNUSED_AFTER

        def movable(pos: int) -> bool:
            other = slots[pos]
            return weight > other.weight() or unused_since > other.last_used

        pos = self._first_unused if self._first_unused < num else num // 2
        if not movable(pos):
            if pos == num - 1:
                return num
            pos = num - 1
            if not movable(pos):
                return num
        del slots[num]
        slots.insert(pos, slot)
        first = self._first_unused
        while first < len(slots) and slots[first].wins:
            first += 1
        self._first_unused = first
        return pos

    def _convert(self, slot: _Slot, m: Match[str], line: str, now: float) -> DateMatch | None:
        start, end = m.span(1)
        if start >= end:  # the date is optional and absent: the last date or now
            if start < 0:
                start = m.start()
            last = self._last_time
            return DateMatch(last if last and last > now - _LAST_DATE_AGE else now, start, start)
        tpl = slot.tpl
        sg = tpl.sec_group
        if sg and (not tpl.frac_group or m.start(tpl.frac_group) < 0):
            # the usual case, kept short: a cached minute plus the line's seconds
            s0, s1 = m.span(sg)
            if s0 >= 0:
                sec = line[s0:s1]
                hit = slot.cache.get(line[start:s0] + "." + line[s1:end])
                if hit is not None and hit[0] <= now < hit[1] and sec.isdigit():
                    t = hit[2].time + int(sec)
                    self._last_time = t
                    return DateMatch(t, start, end)
        fraction = ""
        seconds = 0
        sec_cut = False
        plain = False
        if not tpl.key_is_date:
            key = m.group()
        else:
            # the fraction of a second and the seconds are left out of the key and added to
            # the cached minute
            cuts = []
            if tpl.sec_group and m.start(tpl.sec_group) >= 0:
                cuts.append(m.span(tpl.sec_group))
                sec_text = line[cuts[-1][0] : cuts[-1][1]]
                seconds = int(sec_text) if sec_text.isdigit() else -1
                sec_cut = seconds >= 0
            if tpl.frac_group and m.start(tpl.frac_group) >= 0:
                cuts.append(m.span(tpl.frac_group))
                fraction = line[cuts[-1][0] : cuts[-1][1]]
            if seconds < 0:  # not plain digits: convert the whole text
                cuts, seconds, fraction, sec_cut = [], 0, "", False
            if cuts:
                key, pos = "", start
                for a, b in sorted(cuts):
                    key += line[pos:a] + "."
                    pos = b
                key += line[pos:end]
            else:
                key = line[start:end]
                plain = True
        entry = slot.cache.get(key)
        if entry is None or not entry[0] <= now < entry[1]:
            values = _field_values(tpl, m)
            if fraction:
                values = (*values[: tpl.frac_index], None, *values[tpl.frac_index + 1 :])
            exact = values
            if sec_cut:
                values = (*values[: tpl.sec_index], "00", *values[tpl.sec_index + 1 :])
            result = tpl.convert(values, now, self._tz, self._local)
            if result is None:
                return DateMatch(math.nan, start, end)  # a date's text, not a valid date
            if sec_cut:
                # a minute is cached only when its seconds add linearly (not across the
                # point where a year-less date flips to last year, say)
                late = (*values[: tpl.sec_index], "59", *values[tpl.sec_index + 1 :])
                at_59 = tpl.convert(late, now, self._tz, self._local)
                if at_59 is None or at_59[0] - result[0] != 59:
                    whole = tpl.convert(exact, now, self._tz, self._local)
                    if whole is None:
                        return DateMatch(math.nan, start, end)
                    extra = int(fraction.ljust(6, "0")[:6]) / 1e6 if fraction else 0.0
                    self._last_time = whole[0] + extra
                    return DateMatch(whole[0] + extra, start, end)
            second = math.floor(now)
            valid = (second, second + 1) if result[1] else _ALWAYS
            entry = (*valid, DateMatch(result[0], start, end))
            if len(slot.cache) >= _CACHE_MAX:
                slot.cache.clear()
            slot.cache[key] = entry
        found = entry[2]
        if fraction or seconds:
            extra = seconds + (int(fraction.ljust(6, "0")[:6]) / 1e6 if fraction else 0.0)
            found = DateMatch(found.time + extra, start, end)
        elif found.start != start or found.end != end:
            found = DateMatch(found.time, start, end)
        if plain:
            slot.memo = (key, entry[0], entry[1], found, (start, end))
        self._last_time = found.time
        return found
