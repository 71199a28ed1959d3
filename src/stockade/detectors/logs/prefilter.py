"""A fast first pass over many log lines: which lines could any failregex match at all?

Every failregex needs some literal text to match (``Failed ``, ``Invalid user``, ...). The
literals each regex cannot do without are worked out from its parsed form: a "cover" is a set
of strings at least one of which occurs in every text the regex matches. A block of lines is
then scanned once for all the literals together — with hyperscan when it is installed, else
with one Python regular expression — and only the lines that hold one are handed to the real
regexes, which keep Python's semantics (conditional groups, lookarounds). Lines without any
of the literals cannot match, so skipping them changes no result.

When some regex has no cover (it could match anything), there is no prefilter and every line
is examined.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

# the standard library's own regex parser and its opcodes (not in the typing stubs)
sre_parse: Any = importlib.import_module("re._parser")
C: Any = importlib.import_module("re._constants")

MIN_LITERAL = 3  # shorter literals would let too many lines through to be worth it

Cover = frozenset[str]


def _best(covers: Iterable[Cover | None]) -> Cover | None:
    """Of several covers that all hold, the most selective: longest shortest literal."""
    best: Cover | None = None
    for c in covers:
        if c is None:
            continue
        if (
            best is None
            or min(map(len, c)) > min(map(len, best))
            or (min(map(len, c)) == min(map(len, best)) and len(c) < len(best))
        ):
            best = c
    return best


MAX_PRODUCT = 64  # at most this many strings in an exact set


def _exact(op: Any, av: Any, caseless: bool) -> set[str] | None:
    """The finite set of strings this item matches in full, if it is small; else None."""
    if op is C.LITERAL:
        ch = chr(av)
        return {ch.lower() if caseless else ch}
    if op is C.AT:
        return {""}
    if op is C.IN:
        chars = set()
        for sub_op, sub_av in av:
            if sub_op is not C.LITERAL:
                return None
            ch = chr(sub_av)
            chars.add(ch.lower() if caseless else ch)
        return chars if len(chars) <= 8 else None
    if op is C.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        return _exact_seq(list(sub), caseless or bool(add_flags & re.IGNORECASE))
    if op is C.BRANCH:
        out: set[str] = set()
        for b in av[1]:
            e = _exact_seq(list(b), caseless)
            if e is None:
                return None
            out |= e
        return out if len(out) <= MAX_PRODUCT else None
    if op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] == av[1] and av[0] <= 4:
        body = _exact_seq(list(av[2]), caseless)
        if body is None:
            return None
        out = {""}
        for _ in range(av[0]):
            out = {a + b for a in out for b in body}
            if len(out) > MAX_PRODUCT:
                return None
        return out
    return None


def _exact_seq(items: Sequence[tuple[Any, Any]], caseless: bool) -> set[str] | None:
    out = {""}
    for op, av in items:
        e = _exact(op, av, caseless)
        if e is None:
            return None
        out = {a + b for a in out for b in e}
        if len(out) > MAX_PRODUCT:
            return None
    return out


def _seq(items: Sequence[tuple[Any, Any]], caseless: bool) -> Cover | None:
    """The best cover of a sequence: runs of exactly-known text, joined, or an item's cover."""
    covers: list[Cover | None] = []
    run: set[str] = {""}

    def flush() -> None:
        nonlocal run
        if any(run):
            covers.append(frozenset(run))
        run = {""}

    for op, av in items:
        e = _exact(op, av, caseless)
        if e is not None:
            product = {a + b for a in run for b in e}
            if len(product) <= MAX_PRODUCT:
                run = product
                continue
        flush()
        if e is None:
            covers.append(_item(op, av, caseless))
        else:
            run = e
    flush()
    return _best(c for c in covers if c is not None and min(map(len, c)) >= MIN_LITERAL)


def _item(op: Any, av: Any, caseless: bool) -> Cover | None:
    if op is C.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        return _seq(list(sub), caseless or bool(add_flags & re.IGNORECASE))
    if op is C.BRANCH:
        _, branches = av
        parts = [_seq(list(b), caseless) for b in branches]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*(p for p in parts if p is not None))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
        lo, _hi, sub = av
        return _seq(list(sub), caseless) if lo >= 1 else None
    if op is C.ATOMIC_GROUP:
        return _seq(list(av), caseless)
    if op is C.GROUPREF_EXISTS:
        _group, yes, no = av
        a = _seq(list(yes), caseless)
        b = _seq(list(no), caseless) if no is not None else None
        return a | b if a is not None and b is not None else None
    return None  # classes, any, assertions, back-references: no literal


def caseless(pattern: re.Pattern[str]) -> bool:
    """Whether any part of the pattern ignores case (then covers are compared lower-cased)."""
    return (
        bool(pattern.flags & re.IGNORECASE)
        or re.search(r"\(\?[a-zL]*i", pattern.pattern) is not None
    )


def cover(pattern: re.Pattern[str]) -> Cover | None:
    """Literals at least one of which appears in any text ``pattern`` matches; None if none.

    When any part of the pattern ignores case, the literals are lower-cased: compare them
    with the lower-cased text.
    """
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    except (re.error, OverflowError, RecursionError):
        return None
    c = _seq(list(parsed), bool(pattern.flags & re.IGNORECASE))
    if c is None:
        return None
    return frozenset(x.lower() for x in c) if caseless(pattern) else c


def halves(literal: str) -> tuple[str, ...]:
    """What of ``literal`` must be in the raw line, the date still in it.

    The regexes see the line with its date cut out, so a literal may straddle the cut: ``[]``
    in ``[<date>]``. Cut at any point, one side keeps at least half the literal, and that side
    is a prefix or a suffix of it: so the first half or the last half is in the raw line.
    """
    h = (len(literal) + 1) // 2
    return (literal,) if h == len(literal) else (literal[:h], literal[-h:])


def _pieces(literal: str, date_at_start: bool) -> tuple[str, ...]:
    """The literal itself when no date can be cut out of its middle: the date is at the line's
    start (at most two non-word characters before it) and the literal starts with a word
    character, so it cannot begin before the date."""
    if date_at_start and literal[:1].isalnum():
        return (literal,)
    return halves(literal)


class Prefilter:
    """Finds the lines of a block that hold literals of a filter's regexes, and which regexes
    those literals belong to (a bit mask: bit i = failregex i may match)."""

    def __init__(self, covers: Sequence[Cover], *, date_at_start: bool = False) -> None:
        owners: dict[str, int] = {}
        for index, c in enumerate(covers):
            for lit in c:
                for piece in _pieces(lit.lower(), date_at_start):
                    owners[piece] = owners.get(piece, 0) | (1 << index)
        self.literals = sorted(owners)
        self.masks = [owners[x] for x in self.literals]
        self.all = (1 << len(covers)) - 1
        self._hs: Any = None
        self._rx: re.Pattern[bytes] | None = None
        try:
            import hyperscan

            db = hyperscan.Database()
            db.compile(
                expressions=[re.escape(x).encode() for x in self.literals],
                ids=list(range(len(self.literals))),
                elements=len(self.literals),
                flags=[hyperscan.HS_FLAG_CASELESS] * len(self.literals),
            )
            self._hs = db
        except Exception:
            self._rx = re.compile(
                b"|".join(re.escape(x.encode()) for x in self.literals), re.IGNORECASE
            )
            self._rx_masks = {x.encode(): m for x, m in zip(self.literals, self.masks, strict=True)}

    @property
    def engine(self) -> str:
        return "hyperscan" if self._hs is not None else "re"

    def hits(self, data: bytes) -> list[tuple[int, int]]:
        """(end offset, regex mask) of every literal occurrence in ``data``, by offset."""
        out: list[tuple[int, int]] = []
        if self._hs is not None:
            append = out.append
            masks = self.masks

            def on_match(lit: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
                append((to, masks[lit]))

            self._hs.scan(data, match_event_handler=on_match)
        else:
            assert self._rx is not None
            for m in self._rx.finditer(data):
                out.append((m.end(), self._rx_masks[m.group().lower()]))
        out.sort()
        return out

    def candidate_lines(self, data: bytes) -> list[tuple[int, int, int]]:
        """(start, end, regex mask) of every line of ``data`` that holds a literal, in order."""
        out: list[tuple[int, int, int]] = []
        rfind, find = data.rfind, data.find
        end = -1
        mask = 0
        start = 0
        for to, m in self.hits(data):
            if to <= end:
                mask |= m
                continue
            if mask:
                out.append((start, end, mask))
            start = rfind(b"\n", 0, to) + 1
            end = find(b"\n", to)
            if end < 0:
                end = len(data)
            mask = m
        if mask:
            out.append((start, end, mask))
        return out

    def mask_of(self, line: str) -> int:
        """The regexes that may match one line (for lines that come one at a time)."""
        low = line.lower()
        mask = 0
        for lit, m in zip(self.literals, self.masks, strict=True):
            if lit in low:
                mask |= m
        return mask


def build(regexes: Sequence[re.Pattern[str]], *, date_at_start: bool = False) -> Prefilter | None:
    """A prefilter for these failregexes, or None when one of them has no cover.

    ``date_at_start``: the filter's dates are anchored at the line's start ({^LN-BEG}).
    """
    covers: list[Cover] = []
    for rx in regexes:
        c = cover(rx)
        if c is None:
            return None
        covers.append(c)
    return Prefilter(covers, date_at_start=date_at_start) if covers else None
