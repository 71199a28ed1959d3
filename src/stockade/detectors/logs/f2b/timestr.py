"""fail2ban time strings (``600``, ``10m``, ``1h 30m``, ``1d12h``, ``1year-6mo``, ``-1``) → seconds.

fail2ban (``MyTime.str2seconds``) turns a time string into an arithmetic expression and
evaluates it: a space is put between a letter and a digit (``1d12h`` → ``1d 12h``); each unit
word that follows a digit or a blank becomes a multiplication (``10m`` → ``10*60``); number
groups separated only by blanks are added (``1*3600 30*60`` → ``1*3600+30*60``). The units,
case-insensitive:

=========  ====================================  ==============================
seconds    s ss se sec second seconds            1
minutes    m mm mi min minute minutes            60
hours      h hh ho hou hour hours                3600
days       d dd da day days                      86400
weeks      w ww we wee week weeks                604800
months     mo mon month months                   2629800 (a year / 12)
years      y yy ye yea year years                31557600 (365.25 days)
=========  ====================================  ==============================

The expression may use ``+ - * /``, parentheses and signs (``1year-6mo``, ``-1``). It is
evaluated here by a small parser; nothing is handed to ``eval``.
"""

from __future__ import annotations

import re

_UNIT_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("s", "ss", "se", "sec", "second", "seconds"), "1"),
    (("m", "mm", "mi", "min", "minute", "minutes"), "60"),
    (("h", "hh", "ho", "hou", "hour", "hours"), "3600"),
    (("d", "dd", "da", "day", "days"), "86400"),
    (("w", "ww", "we", "wee", "week", "weeks"), "604800"),
    (("mo", "mon", "month", "months"), "2629800.0"),
    (("y", "yy", "ye", "yea", "year", "years"), "31557600.0"),
)
UNITS: dict[str, str] = {word: factor for words, factor in _UNIT_WORDS for word in words}

_LETTER_THEN_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)")
_UNIT = re.compile(r"(?<=[\d\s])(?P<word>[A-Za-z]+)\b")
_BLANKS_BETWEEN_DIGITS = re.compile(r"(?P<left>\d)\s+(?P<right>\d)")
_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d*)?|\.\d+)|(?P<op>[-+*/()]))")


def _unit(match: re.Match[str]) -> str:
    factor = UNITS.get(match["word"].lower())
    return match[0] if factor is None else "*" + factor


def to_expression(text: str) -> str:
    """The arithmetic expression fail2ban evaluates for a time string."""
    text = _LETTER_THEN_DIGIT.sub(" ", text)
    text = _UNIT.sub(_unit, text)
    return _BLANKS_BETWEEN_DIGITS.sub(r"\g<left>+\g<right>", text)


def to_seconds(text: str) -> float:
    """Seconds for a fail2ban time string; ValueError when it is not one."""
    try:
        return evaluate(to_expression(text))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (examples: 600, 10m, 1h 30m, 1d, 1w, 1mo, 1y, -1)"
        ) from None


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression of numbers, ``+ - * /``, parentheses and signs."""
    tokens = _tokenize(expression)
    parser = _Arithmetic(tokens)
    value = parser.sum()
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos]!r} in {expression!r}")
    return float(value)


def _tokenize(expression: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            if expression[pos:].strip():
                raise ValueError(f"unexpected {expression[pos:]!r} in {expression!r}")
            break
        tokens.append(match[match.lastgroup or 0])
        pos = match.end()
    if not tokens:
        raise ValueError("empty expression")
    return tokens


class _Arithmetic:
    """Recursive descent over tokens, with Python's int and float semantics."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("the expression ends too early")
        self.pos += 1
        return token

    def sum(self) -> int | float:
        value = self.product()
        while self._peek() in ("+", "-"):
            op = self._take()
            right = self.product()
            value = value + right if op == "+" else value - right
        return value

    def product(self) -> int | float:
        value = self.unary()
        while self._peek() in ("*", "/"):
            op = self._take()
            right = self.unary()
            if op == "*":
                value = value * right
            elif right == 0:
                raise ValueError("division by zero")
            else:
                value = value / right
        return value

    def unary(self) -> int | float:
        if self._peek() in ("+", "-"):
            sign = self._take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.primary()

    def primary(self) -> int | float:
        item = self._take()
        if item == "(":
            value = self.sum()
            if self._take() != ")":
                raise ValueError("missing ')'")
            return value
        if item[0].isdigit() or item[0] == ".":
            return float(item) if "." in item else int(item)
        raise ValueError(f"unexpected {item!r}")
