"""Date templates: fail2ban's ``datepattern`` language compiled to regular expressions.

A template is one compiled pattern plus the knowledge of how to turn what it matched into
epoch seconds.  Three kinds exist, as in fail2ban: strptime-like patterns (``%Y-%m-%d`` and
fail2ban's ``%Ex..`` extensions, possibly embedded in a regular expression), Unix timestamps
(``EPOCH``, ``LEPOCH``, ``{EPOCH}`` inside a regex) and TAI64N labels.  Compiled templates are
shared between detectors (see :func:`template_for`); everything that changes while lines are
matched lives in the detector, not here.

The behaviour follows fail2ban 1.0.2 (``server/datetemplate.py`` and ``server/strptime.py``),
re-implemented: the word/line boundaries added around a pattern, the ``**`` and ``{UNB}``
escapes, ``{^LN-BEG}``, the default template list, the year-less and time-only date rules.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

__all__ = [
    "DEFAULT_PATTERNS",
    "DatePatternError",
    "LocalTime",
    "Template",
    "date_templates",
    "default_templates",
    "parse_zone",
    "template_for",
]


class DatePatternError(ValueError):
    """A ``datepattern`` (or a time zone given with it) that cannot be used; one-line message."""


# --------------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------------

# Fixed offsets of the zone abbreviations fail2ban knows (hours east of UTC: abbreviations).
# An abbreviation is a fixed offset: "CET" is always +01:00, never switched to summer time.
_ZONE_ABBREVIATIONS: Final = """
    -12: Y
    -11: X NUT SST
    -10: W CKT HAST HST TAHT TKT
    -9: V AKST GAMT GIT HADT HNY
    -9.5: MART MIT
    -8: U AKDT CIST HAY HNP PST PT
    -7: T HAP HNR MST PDT
    -6: S CST EAST GALT HAR HNC MDT
    -5: R CDT COT EASST ECT EST ET HAC HNE PET
    -4.5: HLV VET
    -4: Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT
    -3.5: HNT NST NT
    -3: P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT
    -2.5: HAT NDT
    -2: O BRST FNT PMDT UYST WGST
    -1: N AZOT CVT EGT
    0: Z EGST GMT UTC WET WT
    1: A CET DFT WAT WEDT WEST
    2: B CAT CEDT CEST EET SAST WAST
    3: C EAT EEDT EEST IDT MSK
    3.5: IRST
    4: D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT
    4.5: AFT IRDT
    5: E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT
    5.5: SLT
    5.75: NPT
    6: F ALMT BIOT BTT IOT KGT NOVT OMST YEKST
    6.5: CCT MMT
    7: G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB
    8: H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST
    9: I AWDT IRKST JST KST PWT TLT WDT WIT YAKT
    9.5: ACST
    10: K AEST ChST PGT VLAT YAKST YAPT
    10.5: ACDT LHST
    11: L AEDT LHDT MAGT NCT PONT SBT VLAST VUT
    11.5: NFT
    12: M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT
    13: FJST NZDT
"""


def _zone_table() -> dict[str, int]:
    table: dict[str, int] = {}
    for row in _ZONE_ABBREVIATIONS.strip().splitlines():
        hours, _, names = row.partition(":")
        minutes = round(float(hours) * 60)
        for name in names.split():
            table[name] = minutes
    return table


ZONE_MINUTES: Final[dict[str, int]] = _zone_table()

# [abbreviation][offset]: "UTC", "CET+0130", "+02", "-04:30", "GMT+12" (both parts optional).
_ZONE_TEXT = re.compile(r"(?P<abbr>[A-Z](?:[A-Z]{2,4})?)?(?P<off>[+-][01]\d(?::?\d\d)?)?")


@lru_cache(maxsize=256)
def parse_zone(text: str) -> int:
    """Offset east of UTC in minutes of a zone text such as ``UTC``, ``+0200`` or ``CET+01``.

    Raises ``ValueError`` for a text of another form or an unknown abbreviation.  An empty text
    is UTC, as in fail2ban.
    """
    m = _ZONE_TEXT.fullmatch(text)
    if m is None:
        raise ValueError(f"unknown or unsupported time zone {text!r}")
    abbr, off = m.group("abbr", "off")
    base = 0
    if abbr is not None:
        try:
            base = ZONE_MINUTES[abbr]
        except KeyError:
            raise ValueError(f"unknown time zone abbreviation {abbr!r}") from None
    if not off:
        return base
    sign = -1 if off[0] == "-" else 1
    digits = off[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)
    return base + sign * minutes


# --------------------------------------------------------------------------------------------
# Directives
# --------------------------------------------------------------------------------------------

_MONTHS: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_NUMBER: Final[dict[str, int]] = {
    **{name: i for i, name in enumerate(_MONTHS, 1)},
    **{name[:3]: i for i, name in enumerate(_MONTHS, 1)},
}
_WEEKDAY_NUMBER: Final[dict[str, int]] = {
    **{name: i for i, name in enumerate(_DAYS)},
    **{name[:3]: i for i, name in enumerate(_DAYS)},
}


def _names_re(group: str, names: Iterable[str]) -> str:
    # longest first (stable for equal lengths), so that "may" never shadows a longer name
    ordered = sorted(names, key=len, reverse=True)
    return f"(?P<{group}>{'|'.join(ordered)})"


@lru_cache(maxsize=1)
def _exact_year_re() -> str:
    """%ExY without its group: the years 2000 up to three years from now (fixed once read)."""
    return _century_re(_dt.date.today().year) + r"\d"


def _century_re(year: int) -> str:
    """The first three digits of the years %ExY accepts: 2000 up to three years from now."""
    prefixes = sorted({str(y)[:3] for y in range(2000, max(year, 2000) + 4)})
    heads = {p[:2] for p in prefixes}
    if len(heads) == 1:
        tails = "".join(p[2] for p in prefixes)
        return prefixes[0][:2] + (tails if len(tails) == 1 else f"[{tails}]")
    return "(?:" + "|".join(prefixes) + ")"


# Python's own strptime expressions (English names, "C" locale) where fail2ban keeps them,
# fail2ban's replacements and extensions otherwise.  The order of alternatives matters: it
# decides what an ambiguous text such as "1230" is split into.
_STRPTIME_D: Final = r"(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])"
_STRPTIME_M: Final = r"(?P<m>1[0-2]|0[1-9]|[1-9])"
_STRPTIME_TIME: Final = r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)"


@lru_cache(maxsize=1)
def _directives() -> dict[str, str]:
    abbr_month = _names_re("b", (m[:3] for m in _MONTHS))
    abbr_day = _names_re("a", (d[:3] for d in _DAYS))
    zone_abbr = r"[A-Z](?:[A-Z]{2,4})?"
    offset = r"[+-][01]\d(?::?\d{2})?"
    return {
        "a": abbr_day,
        "A": _names_re("A", _DAYS),
        "b": abbr_month,
        "B": _names_re("B", _MONTHS),
        "c": (
            abbr_day
            + r"\s+"
            + abbr_month
            + r"\s+"
            + _STRPTIME_D
            + r"\s+"
            + _STRPTIME_TIME
            + r"\s+(?P<Y>\d\d\d\d)"
        ),
        "d": r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])",
        "f": r"(?P<f>[0-9]{1,6})",
        "G": r"(?P<G>\d\d\d\d)",
        "H": r"(?P<H>[0-1]?\d|2[0-3])",
        "I": r"(?P<I>1[0-2]|0[1-9]|[1-9])",
        "j": r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        "k": r" ?(?P<H>[0-2]?\d)",
        "l": r" ?(?P<I>1?\d)",
        "m": r"(?P<m>0?[1-9]|1[0-2])",
        "M": r"(?P<M>[0-5]?\d)",
        "p": r"(?P<p>am|pm)",
        "s": r"(?P<s>\d+)",  # stockade extension: seconds since the epoch
        "S": r"(?P<S>[0-5]?\d|6[0-1])",
        "u": r"(?P<u>[1-7])",
        "U": r"(?P<U>5[0-3]|[0-4]\d|\d)",
        "V": r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)",
        "w": r"(?P<w>[0-6])",
        "W": r"(?P<W>5[0-3]|[0-4]\d|\d)",
        "x": _STRPTIME_M + "/" + _STRPTIME_D + r"/(?P<y>\d\d)",
        "X": _STRPTIME_TIME,
        "y": r"(?P<y>\d\d)",
        "Y": r"(?P<Y>\d{4})",
        "z": rf"(?P<z>Z|UTC|GMT|{offset})",
        "Z": r"(?P<Z>Z|[A-Z]{3,5})",
        "%": "%",
        "Exb": abbr_month,  # stockade extension (not in fail2ban 1.0.2): same as %b
        "Exd": r"(?P<d>[1-2]\d|0[1-9]|3[0-1])",
        "ExH": r"(?P<H>[0-1]\d|2[0-3])",
        "Exk": r" ?(?P<H>[0-1]?\d|2[0-3])",
        "Exl": r" ?(?P<I>1[0-2]|\d)",
        "Exm": r"(?P<m>0[1-9]|1[0-2])",
        "ExM": r"(?P<M>[0-5]\d)",
        "ExS": r"(?P<S>[0-5]\d|6[0-1])",
        "ExY": rf"(?P<Y>{_exact_year_re()})",
        "Exy": r"(?P<y>\d{2})",
        "ExZ": rf"(?P<Z>{zone_abbr})",
        "Exz": rf"(?P<z>(?:{zone_abbr})?{offset}|{zone_abbr})",
    }


# Directives whose text is a name: a pattern using one is matched ignoring case.
_NAME_DIRECTIVES: Final = frozenset({"a", "A", "b", "B", "p", "c", "Exb"})


def _expand(pattern: str) -> tuple[str, bool]:
    """Replace the %-directives of a pattern by their expressions.

    Returns the regex and whether a directive matching names (months, days, AM/PM) was used.
    """
    table = _directives()
    out: list[str] = []
    names = False
    pos = 0
    while True:
        at = pattern.find("%", pos)
        if at < 0:
            out.append(pattern[pos:])
            break
        out.append(pattern[pos:at])
        rest = pattern[at + 1 : at + 4]
        key = rest if rest.startswith("Ex") and rest in table else rest[:1]
        if key not in table:
            shown = pattern[at : at + (4 if rest.startswith("Ex") else 2)]
            what = "a lone % at the end" if not rest else f"unknown directive {shown!r}"
            raise DatePatternError(f"datepattern {pattern!r}: {what} (write %% for a percent sign)")
        out.append(table[key])
        names = names or key in _NAME_DIRECTIVES
        pos = at + 1 + len(key)
    return "".join(out), names


# --------------------------------------------------------------------------------------------
# Regex structure
# --------------------------------------------------------------------------------------------


class _Group:
    __slots__ = ("capturing", "close", "name", "open")

    def __init__(self, open_: int, capturing: bool, name: str | None) -> None:
        self.open = open_
        self.close = -1
        self.capturing = capturing
        self.name = name


def _groups(regex: str) -> list[_Group]:
    """The parenthesised groups of a regex, in the order they open (escapes and sets skipped)."""
    found: list[_Group] = []
    stack: list[_Group] = []
    i, n = 0, len(regex)
    while i < n:
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i += 1
            if i < n and regex[i] == "^":
                i += 1
            if i < n and regex[i] == "]":
                i += 1
            while i < n and regex[i] != "]":
                i += 2 if regex[i] == "\\" else 1
        elif c == "(":
            if regex.startswith("?(", i + 1):  # conditional: (?(name)yes|no), name is no group
                group = _Group(i, False, None)
                found.append(group)
                stack.append(group)
                i = max(regex.find(")", i + 3), i + 2) + 1
                continue
            if regex.startswith("?P<", i + 1):
                end = regex.find(">", i)
                group = _Group(i, True, regex[i + 4 : end])
            else:
                group = _Group(i, not regex.startswith("?", i + 1), None)
            found.append(group)
            stack.append(group)
        elif c == ")" and stack:
            stack.pop().close = i
        i += 1
    return found


def _unescaped_at_end(regex: str, suffix: str) -> bool:
    if not regex.endswith(suffix):
        return False
    slashes = len(regex) - len(suffix) - len(regex[: len(regex) - len(suffix)].rstrip("\\"))
    return slashes % 2 == 0


_LEAD_FLAGS = re.compile(r"\(\?\w+\)")
_GLOBAL_FLAGS = re.compile(r"(?<!\\)\(\?[a-z]+\)")
# The pattern starts at a line start or opts out of the word boundary: ^, (^, (?:^, **.
_OPTS_OUT_BEGIN = re.compile(r"\(*(?:\(\?\w+\))?\(*(?:\?:)?(?:\^|\*\*)")
_LINE_START = re.compile(r"(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))")
_STARS_BEGIN = re.compile(r"\(*(?:\(\?\w+\))?\(*\*\*")
_STARS_END = re.compile(r"(?<!\\)\*\*\)*\Z")

_WORD_BEGIN: Final = r"(?=^|\b|\W)"
_WORD_END: Final = r"(?=\b|\W|$)"
_LINE_BEGIN_PREFIX: Final = r"^\W{0,2}"  # {^LN-BEG}: at the line start, after 2 non-word chars


def _bounded(regex: str, word_begin: bool | str, word_end: bool) -> tuple[str, bool, bool, bool]:
    """Add fail2ban's boundaries to a date regex.

    ``word_begin`` is True (the date starts a word), ``"start"`` ({^LN-BEG}: the date starts
    the line, after at most two non-word characters) or False.  Returns the regex, whether it
    is anchored at the line start, at the line end, and whether the {^LN-BEG} prefix was added.
    A regex starting with ``^``/``**`` or ending with ``$``/``\\b``/``\\s``/``**`` keeps its own
    boundary; ``**`` itself is removed.  The date must be group 1: a regex without a plain
    capturing group is wrapped in one.
    """
    regex = regex.strip()
    flags = ""
    gf = _GLOBAL_FLAGS.search(regex)
    if gf is not None:
        flags = gf.group()
        regex = regex[: gf.start()] + regex[gf.end() :]
    begin = bool(word_begin) and _OPTS_OUT_BEGIN.match(regex) is None
    end = (
        word_end
        and not any(_unescaped_at_end(regex, s) for s in ("$", "$)", "\\b", "\\s"))
        and _STARS_END.search(regex) is None
    )
    if not any(g.capturing and g.name is None for g in _groups(regex)):
        lead = _LEAD_FLAGS.match(regex)
        head_end = lead.end() if lead else 0
        if regex.startswith("^", head_end):
            head_end += 1
            lead = _LEAD_FLAGS.match(regex, head_end)
            head_end = lead.end() if lead else head_end
        tail = 1 if _unescaped_at_end(regex, "$") and len(regex) > head_end else 0
        body_end = len(regex) - tail
        regex = regex[:head_end] + "(" + regex[head_end:body_end] + ")" + regex[body_end:]
    start_prefixed = False
    if begin:
        if word_begin == "start":
            regex = _LINE_BEGIN_PREFIX + regex
            start_prefixed = True
        else:
            regex = _WORD_BEGIN + regex
    if end:
        regex += _WORD_END
    at_line_start = start_prefixed or _LINE_START.match(regex) is not None
    at_line_end = (_unescaped_at_end(regex, "$") or _unescaped_at_end(regex, "$)")) and not (
        regex.endswith("|$") or regex.endswith("|$)")
    )
    stars = _STARS_BEGIN.match(regex)
    if stars is not None:
        regex = stars.group().replace("**", "") + regex[stars.end() :]
    stars = _STARS_END.search(regex)
    if stars is not None:
        regex = regex[: stars.start()] + stars.group().replace("**", "")
    return flags + regex, at_line_start, at_line_end, start_prefixed


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

PATTERN: Final = 0
EPOCH: Final = 1
TAI64N: Final = 2

# Groups that carry a date field (p only qualifies %I; G, u and V are matched but unused).
_FIELDS: Final = frozenset("yYmBbdHIMSfAawjUWzZsp")


class Template:
    """One compiled date template, shared read-only between detectors.

    ``search`` is the compiled regex's search; ``search_full`` gives the same result for a
    whole line, faster for some default templates.  ``key_is_date`` says that every date field
    lies inside group 1, so that the text of group 1 alone determines the conversion (and can
    key a cache); ``frac_group`` is the group of the fraction of a second then, if any.
    """

    __slots__ = (
        "anchored",
        "epoch_group",
        "epoch_long",
        "field_groups",
        "field_names",
        "frac_group",
        "frac_index",
        "ident",
        "key_is_date",
        "kind",
        "line_begin",
        "name",
        "pattern",
        "regex",
        "search",
        "search_full",
        "sec_group",
        "sec_index",
        "weight",
    )

    def __init__(
        self,
        kind: int,
        name: str,
        pattern: str,
        regex: str,
        line_begin: bool,
        line_end: bool,
        *,
        epoch_group: int = 1,
        epoch_long: bool = False,
        prefilter: str | None = None,
    ) -> None:
        try:
            compiled = re.compile(regex)
        except re.error as e:
            raise DatePatternError(f"datepattern {pattern!r} is not a valid regex: {e}") from None
        if compiled.groups < 1:  # pragma: no cover - _bounded always provides group 1
            raise DatePatternError(f"datepattern {pattern!r} has no date group")
        self.kind = kind
        self.name = name
        self.pattern = pattern
        self.regex = regex
        self.search = compiled.search
        self.search_full: Callable[[str], re.Match[str] | None] = compiled.search
        if prefilter is not None:
            self.search_full = _prefiltered(compiled.search, re.compile(prefilter).search)
        elif kind == EPOCH and epoch_group == 1 and not line_begin:
            self.search_full = _epoch_search(compiled.match)
        self.line_begin = line_begin
        self.anchored = line_begin or line_end
        self.weight = 1.0
        self.epoch_group = epoch_group
        self.epoch_long = epoch_long
        self.ident = (kind, regex)
        index = compiled.groupindex
        fields = sorted((i, n) for n, i in index.items() if n in _FIELDS)
        self.field_names = tuple(n for _, n in fields)
        self.field_groups = tuple(i for i, _ in fields)
        groups = _groups(regex)
        first = next(g for g in groups if g.capturing)
        self.key_is_date = all(
            first.open < g.open and g.close <= first.close
            for g in groups
            if g.name in index and g.name in _FIELDS
        )
        self.frac_group = index["f"] if self.key_is_date and "f" in self.field_names else 0
        self.frac_index = self.field_names.index("f") if self.frac_group else -1
        # seconds are left out of cache keys too (a date is its minute plus its seconds), so
        # that a log with a new second on every line still converts from the cache
        secs = self.key_is_date and kind == PATTERN and "S" in self.field_names
        self.sec_group = index["S"] if secs else 0
        self.sec_index = self.field_names.index("S") if secs else -1

    def with_weight(self, weight: float) -> Template:
        twin = object.__new__(Template)
        for slot in Template.__slots__:
            setattr(twin, slot, getattr(self, slot))
        twin.weight = weight
        return twin

    def __repr__(self) -> str:
        return f"<date template {self.name!r}>"

    def convert(
        self,
        values: tuple[str | None, ...],
        now: float,
        default_tz: int | None,
        local: LocalTime,
    ) -> tuple[float, bool] | None:
        """Epoch seconds of a matched date, and whether that depends on ``now``.

        ``values`` are the texts of :attr:`field_groups` (for the epoch kinds: group
        :attr:`epoch_group` alone).  None when the text is no valid date.
        """
        if self.kind == PATTERN:
            return _fields_to_epoch(self.field_names, values, now, default_tz, local)
        text = values[0]
        if not text:
            return None
        if self.kind == EPOCH:
            value = float(text)
            if self.epoch_long and len(text) >= 13:
                value /= 1_000_000 if len(text) >= 16 and "." not in text else 1000
            return value, False
        # TAI64N: "@" + 16 hex digits of 2**62 + seconds + 8 hex digits of nanoseconds
        return int(text[2:17], 16) + int(text[17:25], 16) / 1e9, False


def _prefiltered(
    search: Callable[[str], re.Match[str] | None], needed: Callable[[str], object]
) -> Callable[[str], re.Match[str] | None]:
    """A search that first looks for text every match must contain (a cheap regex)."""

    def search_full(line: str) -> re.Match[str] | None:
        if needed(line) is None:
            return None
        return search(line)

    return search_full


def _epoch_search(
    match: Callable[[str, int], re.Match[str] | None],
) -> Callable[[str], re.Match[str] | None]:
    """Search for the unanchored EPOCH template: it can only match at the line start, after a
    "[" starting the line, or after "audit(" -- try those places, in order."""

    def search_full(line: str) -> re.Match[str] | None:
        m = match(line, 0)
        if m is None and line.startswith("["):
            m = match(line, 1)
        at = line.find("audit(")
        while m is None and at >= 0:
            m = match(line, at + 6)
            at = line.find("audit(", at + 1)
        return m

    return search_full


_EPOCH_SHORT: Final = r"\d{10,11}\b(?:\.\d{3,6})?"
_EPOCH_LONG: Final = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?"
_EPOCH_PLACEHOLDER = re.compile(r"(?<!\\)\{L?EPOCH\}", re.IGNORECASE)
_LN_BEG: Final = "{^LN-BEG}"
_UNB: Final = "{UNB}"


def _bounds_options(pattern: str) -> tuple[str, bool | str, bool]:
    """Strip a leading {UNB} (no boundaries) or {^LN-BEG} (at the line start) off a pattern."""
    if pattern.startswith(_UNB):
        return pattern[len(_UNB) :], False, False
    if pattern.startswith(_LN_BEG):
        return pattern[len(_LN_BEG) :], "start", True
    return pattern, True, True


def _pattern_template(pattern: str) -> Template:
    text, word_begin, word_end = _bounds_options(pattern)
    regex, names = _expand(text)
    if names:
        regex = "(?iu)" + regex
    regex, line_begin, line_end, prefixed = _bounded(regex, word_begin, word_end)
    name = _LN_BEG + text if prefixed else pattern
    prefilter = None if line_begin or line_end else _prefilters().get(pattern)
    return Template(PATTERN, name, pattern, regex, line_begin, line_end, prefilter=prefilter)


def _epoch_template(pattern: str, *, line_begin_only: bool, long: bool) -> Template:
    digits = _EPOCH_LONG if long else _EPOCH_SHORT
    if line_begin_only:
        # at the line start, possibly in square brackets: "[1138049999]"
        regex = rf"((?P<square>(?<=^\[))?{digits})(?(square)(?=\]))"
        regex, lb, le, _ = _bounded(regex, "start", True)
        name = _LN_BEG + ("LongEpoch" if long else "Epoch")
        return Template(EPOCH, name, pattern, regex, lb, le, epoch_long=long)
    # at the line start, in "[...]" at the line start, or in SELinux's "audit(...:NNN)"
    regex = (
        rf"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\()))"
        rf"{digits})(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
    )
    regex, lb, le, _ = _bounded(regex, False, True)
    return Template(
        EPOCH, "LongEpoch" if long else "Epoch", pattern, regex, lb, le, epoch_long=long
    )


def _epoch_in_regex(pattern: str, *, long: bool) -> Template:
    digits = _EPOCH_LONG if long else _EPOCH_SHORT
    text, word_begin, word_end = _bounds_options(pattern)
    regex = "(" + _EPOCH_PLACEHOLDER.sub(lambda _m: f"({digits})", text) + ")"
    regex, lb, le, _ = _bounded(regex, word_begin, word_end)
    return Template(EPOCH, pattern, pattern, regex, lb, le, epoch_group=2, epoch_long=long)


def _tai64n_template(pattern: str, *, line_begin_only: bool) -> Template:
    regex, lb, le, prefixed = _bounded("@[0-9a-f]{24}", "start" if line_begin_only else False, True)
    return Template(TAI64N, (_LN_BEG if prefixed else "") + "TAI64N", pattern, regex, lb, le)


@lru_cache(maxsize=1024)
def template_for(pattern: str) -> Template:
    """The compiled template of one datepattern line (cached: templates are shared).

    ``EPOCH``, ``LEPOCH`` and ``TAI64N`` (any case, optionally after ``^`` or ``{^LN-BEG}``)
    are the timestamp templates; ``{EPOCH}``/``{LEPOCH}`` inside a regex mark where a
    timestamp is; anything else is a strptime-like pattern.  Raises DatePatternError.
    """
    key = pattern if "%" in pattern else pattern.upper()
    if "EPOCH" in key:
        if _EPOCH_PLACEHOLDER.search(pattern):
            return _epoch_in_regex(pattern, long="LEPOCH" in key)
        for word, long in (("EPOCH", False), ("LEPOCH", True)):
            if key in (word, _LN_BEG + word, "^" + word):
                return _epoch_template(pattern, line_begin_only=key != word, long=long)
    if key in ("TAI64N", _LN_BEG + "TAI64N", "^TAI64N"):
        return _tai64n_template(pattern, line_begin_only=key != "TAI64N")
    return _pattern_template(pattern)


# fail2ban's default date formats, most specific first.
DEFAULT_PATTERNS: Final = (
    # ISO 8601 / simple date, optional fraction and zone: 2005-01-23T21:59:59.981746,
    # 2005-01-23 21:59:59, 2005/01/23 21:59:59, syslog-ng 2006.12.21 06:43:20
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    # asctime, optional weekday, fraction and year: Sun Jan 23 21:59:59.011 2005
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    # asctime with the year after the day: Sun Jan 23 2005 21:59:59.011
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    # 23/01/2005 21:59:59, 23/01/05 21:59:59, 17-07-2008 17:23:25
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    # Apache [31/Oct/2006:09:22:55 -0000], 26-Jul-2007 15:20:52.252 +0200
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    # CPanel 05/20/2008:01:57:39
    r"%m/%d/%ExY:%H:%M:%S",
    # 01-27-2012 16:22:44.252
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    # Unix timestamp
    r"EPOCH",
    # time only, at the line start
    r"{^LN-BEG}%H:%M:%S",
    # <09/16/08@05:03:30>
    r"^<%m/%d/%Exy@%H:%M:%S>",
    # MySQL 130322 11:46:11
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    # Apache Tomcat: Jan 23, 2005 9:59:59 PM
    r"%b %d, %ExY %I:%M:%S %p",
    # ASSP: Apr-27-13 02:33:06
    r"^%b-%d-%Exy %k:%M:%S",
    # 20050123T215959, 20050123 215959
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    # named zone first (monit): PDT Apr 16 21:05:29
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    # offset first: +00:00 Jan 23 21:59:59.011 2005
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    # TAI64N
    r"TAI64N",
)


@lru_cache(maxsize=1)
def _prefilters() -> dict[str, str]:
    """For the unanchored default templates: a regex finding text that every match of the
    template contains.  Searching a whole line for a template that is not there costs up to
    30 us; these cost well under 2 us, and are only a pre-check (the template still decides).

    Each is derived from the template's directives: %d is at most "[ 0-3]?\\d", a month
    abbreviation (case-insensitive) ends in one of "nbrylgptvc", %k is " ?\\d\\d?", and so on.
    """
    year = _exact_year_re()
    day = r"[ 0-3]?\d"
    month_end = "[nbrylgptvcNBRYLGPTVC]"
    month_day_time = rf"{month_end} {day}  ?\d\d?:"
    p = DEFAULT_PATTERNS
    return {
        p[0]: rf"{year}[-/.]",  # ISO 8601
        p[1]: month_day_time,  # asctime
        p[2]: rf"{month_end} {day} {year}  ?\d\d?:",  # asctime, year after the day
        p[3]: r"[-/](?:0?[1-9]|1[0-2])[-/]\d\d(?:\d\d)? ",  # 23/01/2005 21:59:59
        p[4]: rf"[-/][A-Za-z\u017f]{{3}}[-/]{year}",  # Apache (\u017f: "s" ignoring case)
        p[5]: rf"/{day}/{year}:",  # CPanel
        p[6]: rf"-{day}-{year} ",  # 01-27-2012 16:22:44.252
        p[10]: r"[01]\d[0-3]\d  ?\d\d?:",  # MySQL
        p[11]: rf"{month_end} {day}, {year} ",  # Apache Tomcat
        p[13]: rf"{year}[01]\d[0-3]\d(?:T|  ?)[0-2]\d[0-5]\d[0-6]\d",  # 20050123T215959
        p[14]: month_day_time,  # zone name first
        p[15]: month_day_time,  # zone offset first
    }


@lru_cache(maxsize=1)
def _default_originals() -> tuple[Template, ...]:
    return tuple(template_for(p) for p in DEFAULT_PATTERNS)


@lru_cache(maxsize=1)
def default_templates() -> tuple[Template, ...]:
    """fail2ban's default list: line-start variants of the templates first (weighted 100, so
    that they stay in front when the detector reorders), then the templates themselves."""
    front: list[Template] = []
    for tpl, pattern in zip(_default_originals(), DEFAULT_PATTERNS, strict=True):
        if pattern.startswith((_LN_BEG, "^")):
            continue
        base = pattern if tpl.kind == PATTERN else tpl.name
        front.append(template_for(_LN_BEG + base).with_weight(100.0))
    return (*front, *_default_originals())


_DATE_PLACEHOLDER = re.compile(r"(?<!\\)\{DATE\}", re.IGNORECASE)


def _unbound(pattern: str) -> str:
    for head in (_UNB, _LN_BEG, r"(?:^|\b|\W)", r"(^|\b|\W)"):
        if pattern.startswith(head):
            pattern = pattern[len(head) :]
    return pattern.removesuffix(_WORD_END)


def date_templates(pattern: str) -> list[Template]:
    """The default formats, each put where ``{DATE}`` stands in ``pattern``.

    As in fail2ban, the timestamp formats are put in by name: ``^{DATE}`` yields the line-start
    EPOCH and TAI64N templates, while inside a longer regex "Epoch" is just text.
    """
    out = []
    for tpl, base in zip(_default_originals(), DEFAULT_PATTERNS, strict=True):
        fill = _unbound(base if tpl.kind == PATTERN else tpl.name)
        out.append(template_for(_DATE_PLACEHOLDER.sub(_constant(fill), pattern)))
    return out


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    """A replacement function for re.sub: inserts ``text`` without escape processing."""
    return lambda _m: text


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def _julian(year: int, week: int, weekday: int, monday_first: bool) -> int:
    """Day of the year (1-based, may fall outside the year) of a weekday in a week of %U/%W.

    ``weekday`` counts from Monday = 0.  Week 1 starts on the year's first Monday (%W) or
    Sunday (%U); the days before it are week 0.
    """
    start = 0 if monday_first else 6
    jan1 = (_dt.date(year, 1, 1).weekday() - start) % 7  # Jan 1st's place in its week
    day = (weekday - start) % 7
    if week == 0:
        return 1 + day - jan1
    return 1 + (-jan1) % 7 + 7 * (week - 1) + day


_EPOCH_DAY: Final = _dt.date(1970, 1, 1).toordinal()
_MEMO_MAX: Final = 4096


class LocalTime:
    """Local-time arithmetic for one detector, memoised: "now" as wall-clock values (per
    second of now) and ``time.mktime`` (per minute: within a minute the zone offset does not
    change).  The process's time zone must not change while it is in use."""

    __slots__ = ("_minutes", "_now_dt", "_now_key", "_now_secs")

    def __init__(self) -> None:
        self._minutes: dict[tuple[int, int, int, int, int], float] = {}
        self._now_key = -1
        self._now_dt = _dt.datetime.min
        self._now_secs = 0

    def now(self, now: float) -> tuple[_dt.datetime, int]:
        """The local wall clock at ``now``, and as seconds since 0001-01-01 (whole seconds:
        dates have no fraction when compared with now)."""
        key = int(now)
        if key != self._now_key:
            dt = _dt.datetime.fromtimestamp(now)
            self._now_dt = dt
            self._now_secs = dt.toordinal() * 86400 + dt.hour * 3600 + dt.minute * 60 + dt.second
            self._now_key = key
        return self._now_dt, self._now_secs

    def mktime(self, year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
        """``time.mktime`` of a local date and time, the zone's DST rules deciding."""
        key = (year, month, day, hour, minute)
        base = self._minutes.get(key)
        if base is None:
            base = time.mktime((year, month, day, hour, minute, 0, 0, 0, -1))
            if len(self._minutes) >= _MEMO_MAX:
                self._minutes.clear()
            self._minutes[key] = base
        return base + second


def _fields_to_epoch(
    names: tuple[str, ...],
    values: tuple[str | None, ...],
    now: float,
    default_tz: int | None,
    local: LocalTime,
) -> tuple[float, bool] | None:
    """Epoch seconds of strptime fields, and whether the result depends on ``now``.

    fail2ban's rules: a two-digit year is in this century; without a year the date is in the
    year of now, or the year before when that puts it more than a day ahead of now; without
    month and day it is today, or yesterday when that puts it ahead of now.  A zone in the
    text wins over ``default_tz``, which wins over the local zone.  Comparisons with now are
    made on the wall-clock values, as fail2ban does.  None for an invalid date.
    """
    year = month = day = tz = weekday = julian = week = epoch = None
    hour = minute = second = 0
    fraction = 0.0
    monday_first = True
    ampm = ""
    try:
        for name, value in zip(names, values, strict=True):
            if value is None:
                continue
            if name == "d":
                day = int(value)
            elif name == "H":
                hour = int(value)
            elif name == "M":
                minute = int(value)
            elif name == "S":
                second = int(value)
            elif name in {"b", "B"}:
                month = _MONTH_NUMBER[value.lower()]
            elif name == "m":
                month = int(value)
            elif name == "Y":
                year = int(value)
            elif name == "y":
                year = int(value)
                if year <= 2000:  # two digits: this century
                    year += 2000
            elif name == "f":
                fraction = int(value.ljust(6, "0")) / 1e6
            elif name == "I":
                hour = int(value)
                if "p" in names:
                    ampm = (values[names.index("p")] or "").lower()
                if ampm in ("", "am"):
                    if hour == 12:
                        hour = 0
                elif ampm == "pm" and hour != 12:
                    hour += 12
            elif name in {"z", "Z"}:
                tz = 0 if value in ("Z", "UTC", "GMT") else parse_zone(value)
            elif name in {"a", "A"}:
                weekday = _WEEKDAY_NUMBER[value.lower()]
            elif name == "w":
                weekday = (int(value) - 1) % 7
            elif name == "j":
                julian = int(value)
            elif name in {"U", "W"}:
                week = int(value)
                monday_first = name == "W"
            elif name == "s":
                epoch = int(value)
    except (KeyError, ValueError):
        return None  # an unknown zone or name: no usable date
    if epoch is not None:
        return epoch + fraction, False

    assume_year = year is None
    need_now = assume_year or (month is None and day is None)
    now_dt, now_secs = local.now(now) if need_now else (_dt.datetime.min, 0)
    try:
        if year is None:
            year = now_dt.year
        if month is None or day is None:
            if julian is None and week is not None and weekday is not None:
                julian = _julian(year, week, weekday, monday_first)
            if julian is not None:
                date = _dt.date.fromordinal(_dt.date(year, 1, 1).toordinal() + julian - 1)
                year, month, day = date.year, date.month, date.day
        today = month is None and day is None
        if today:
            month, day = now_dt.month, now_dt.day
        # a month without a day (or the reverse) is taken as its first, like strptime does
        if month is None:
            month = 1
        if day is None:
            day = 1
        if hour > 23 or minute > 59 or second > 59:
            return None
        clock = hour * 3600 + minute * 60 + second
        if tz is None:
            tz = default_tz
        shift = 0 if tz is None else tz * 60
        wall = _dt.date(year, month, day).toordinal() * 86400 + clock - shift
        moved = False
        if today:
            if wall > now_secs:  # a time later than now is yesterday's
                wall -= 86400
                moved = True
        elif assume_year and wall > now_secs + 86400:  # more than a day ahead: last year's
            year -= 1
            wall = _dt.date(year, month, day).toordinal() * 86400 + clock - shift
        dependent = assume_year or today
        if tz is not None:
            return wall - _EPOCH_DAY * 86400 + fraction, dependent
        if moved:
            date = _dt.date.fromordinal(wall // 86400)
            year, month, day = date.year, date.month, date.day
        seconds = local.mktime(year, month, day, hour, minute, second)
    except (ValueError, OverflowError):
        return None
    return seconds + fraction, dependent
