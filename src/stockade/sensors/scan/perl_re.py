"""Perl regular expressions (as nmap's probe database writes them) for Python's ``re``, on bytes.

Most of nmap's patterns are already valid for ``re``; :func:`translate` rewrites what Perl
writes differently and ``re`` would reject or read otherwise:

- ``\\z`` (end of subject) → ``\\Z``, and Perl's ``\\Z`` (end, or before a final newline) →
  ``(?=\\n?\\Z)``;
- ``\\h``/``\\H`` (horizontal space) → ``[ \\t]``/``[^ \\t]``, ``\\e`` → ``\\x1b``,
  ``\\x{HH}`` → ``\\xHH``, ``\\Q…\\E`` → the text escaped;
- POSIX classes inside brackets (``[[:alpha:]_]``) → their ASCII ranges;
- ``(?<name>…)`` → ``(?P<name>…)``;
- an escaped letter with no meaning in Perl (``\\i``) → the letter itself, as Perl reads it.

What cannot be translated (``\\p{…}``, ``\\K``, ``\\G``, inline flags in mid-pattern, recursion)
raises :class:`Untranslatable`; the caller counts and skips that pattern. Pure, no I/O.
"""

from __future__ import annotations

import re

POSIX = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
    "print": r" -~",
    "graph": r"!-~",
    "cntrl": r"\x00-\x1f\x7f",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
}
#: escapes Python's ``re`` knows for bytes patterns (digits: back references and octal)
_KNOWN = set("abBdDfnrsStvwWAx0123456789")
_OUT_ONLY = {"z": r"\Z", "Z": r"(?=\n?\Z)", "h": r"[ \t]", "H": r"[^ \t]"}
_REFUSED = set("pPKGXRNCgkLlUuoN")


class Untranslatable(ValueError):
    """A Perl construct with no ``re`` equivalent."""


def translate(pattern: str) -> str:
    """``pattern`` (Perl syntax) for Python's ``re``; raises :class:`Untranslatable`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            piece, i = _escape(pattern, i, in_class)
            out.append(piece)
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name not in POSIX:
                    raise Untranslatable(f"POSIX class {name!r}")
                out.append(POSIX[name])
                i = end + 2
                continue
            if c == "[":
                out.append("\\[")  # a literal inside a class (re warns about nested sets)
            else:
                out.append(c)
                in_class = c != "]"
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            # a leading ] (or ^]) is a literal in both dialects
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            piece, i = _group(pattern, i, bool(out))
            out.append(piece)
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _group(pattern: str, i: int, after_start: bool) -> tuple[str, int]:
    rest = pattern[i + 2 : i + 3]
    if pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
        return "(?P<", i + 3
    if pattern.startswith("(?P", i) or rest in (":", "=", "!", ">", "<", "#"):
        return "(?", i + 2
    m = re.match(r"\(\?([imsx]+)\)", pattern[i:])
    if m and not after_start:
        return m.group(), i + m.end()
    m = re.match(r"\(\?([imsx]*)(?:-[imsx]+)?:", pattern[i:])
    if m:
        return m.group(), i + m.end()
    raise Untranslatable(f"group {pattern[i : i + 5]!r}")


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise Untranslatable("a trailing backslash")
    e = pattern[i + 1]
    if e == "x" and pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        digits = pattern[i + 3 : end] if end > 0 else ""
        if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", digits):
            raise Untranslatable(f"\\x{{{digits}}}")
        return f"\\x{int(digits, 16):02x}", end + 1
    if e == "Q":
        end = pattern.find("\\E", i + 2)
        end = len(pattern) if end < 0 else end
        return re.escape(pattern[i + 2 : end]), min(len(pattern), end + 2)
    if e == "E":
        return "", i + 2
    if e == "e":
        return r"\x1b", i + 2
    if e in "hH" and in_class:
        if e == "H":
            raise Untranslatable("\\H inside a class")
        return r" \t", i + 2
    if e in _OUT_ONLY:
        if in_class:
            return e, i + 2
        return _OUT_ONLY[e], i + 2
    if e in _REFUSED:
        raise Untranslatable(f"\\{e}")
    if e.isascii() and e.isalpha() and e not in _KNOWN:
        return e, i + 2
    return pattern[i : i + 2], i + 2
