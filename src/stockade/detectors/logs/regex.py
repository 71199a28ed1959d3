"""fail2ban's failregex language, compiled to Python regular expressions.

A failregex is a Python regular expression with tags:

- address tags: ``<HOST>`` (an IPv4 or IPv6 address, or a host name unless ``usedns = no``),
  ``<ADDR>`` (IPv4 or IPv6, optionally in brackets), ``<IP4>``, ``<IP6>``, ``<DNS>``,
  ``<CIDR>`` (a prefix length), ``<SUBNET>`` (an address with an optional ``/len``);
- capture tags: ``<F-NAME>...</F-NAME>`` becomes the named group ``name`` (``F-ID`` → ``fid``,
  ``F-PORT`` → ``fport``), self-closing ``<F-ID/>``, ``<F-PORT/>``, ``<F-IP4/>`` ...; names
  starting with ``alt_`` merge into their base name, ``tuple_`` ones combine into a tuple;
- ``<SKIPLINES>`` for multi-line regexes (lines in between that belong to other events).

The group names are the ones fail2ban uses (``ip4``, ``ip6``, ``dns``, ``fid``, ``cidr``,
``mlfid``, ``nofail``, ``mlfforget``, ``mlfgained``, ``content``, ``user``...), because filters and
their sample annotations rely on them. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
IP6 = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)"
_R_IP4 = rf"(?:::f{{4,6}}:)?(?P<ip4>{IP4})"
_R_IP6 = rf"(?P<ip6>{IP6})"
_R_DNS = r"(?P<dns>[\w\-.^_]*\w)"
_R_CIDR = r"(?P<cidr>\d+)"
_R_ADDR = rf"\[?(?:{_R_IP4}|{_R_IP6})\]?"
_R_HOST = rf"(?:{_R_ADDR}|{_R_DNS})"
_R_SUBNET = rf"\[?(?:{_R_IP4}|{_R_IP6})(?:/{_R_CIDR})?\]?"

_STATIC = {
    "IP4": _R_IP4,
    "F-IP4/": _R_IP4,
    "IP6": _R_IP6,
    "F-IP6/": _R_IP6,
    "ADDR": _R_ADDR,
    "F-ADDR/": _R_ADDR,
    "CIDR": _R_CIDR,
    "F-CIDR/": _R_CIDR,
    "SUBNET": _R_SUBNET,
    "F-SUBNET/": _R_SUBNET,
    "DNS": _R_DNS,
    "F-DNS/": _R_DNS,
    "F-ID/": r"(?P<fid>\S+)",
    "F-PORT/": r"(?P<fport>\w+)",
}
_RENAME = {"id": "fid", "port": "fport"}
_TAG = re.compile(r"</?[\w\-]+/?>")
_CUSTOM = re.compile(r"^(/?)F-([A-Z0-9_\-]+)$")
_GLOBAL_FLAGS = re.compile(r"(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)")
_COMPLEX = re.compile(r"^(alt_|tuple_)(.*?)(?:_\d+)?$")

#: Groups that identify a failure, in the order they are looked up.
FAILURE_ID_GROUPS = ("fid", "ip4", "ip6", "dns")
_ID_PRESENT = (*FAILURE_ID_GROUPS, "mlfid")


class RegexError(ValueError):
    """A failregex that cannot be compiled, with the reason."""


def group_name(tag: str) -> str:
    low = tag.lower()
    return _RENAME.get(low, low)


def resolve_tags(regex: str, usedns: str = "yes") -> str:
    """Replace fail2ban's tags in ``regex`` with Python regular expression syntax."""
    opened: set[str] = set()
    lines = [0]

    def subst(m: re.Match[str]) -> str:
        tag = m.group()
        name = tag[1:-1]
        if name == "HOST":
            return _R_HOST if usedns != "no" else _R_ADDR
        if name == "SKIPLINES":
            n = lines[0]
            lines[0] += 1
            return rf"\n(?P<skiplines{n}>(?:(?:.*\n)*?))"
        static = _STATIC.get(name)
        if static is not None:
            return static
        custom = _CUSTOM.match(name)
        if custom is None:
            return tag  # not a tag of ours: a literal such as <br> stays as written
        closing, cname = custom.groups()
        if closing:
            return ")" if cname in opened else tag
        opened.add(cname)
        return f"(?P<{group_name(cname)}>"

    out = _TAG.sub(subst, regex)
    # a global flag such as (?i) in the middle of a regex becomes a local one: (?i:...)
    return _GLOBAL_FLAGS.sub(r"\1:", out)


@dataclass(frozen=True)
class CompiledRegex:
    """A compiled failregex (or prefregex, ignoreregex) and what it captures."""

    source: str
    pattern: re.Pattern[str]
    alt: tuple[tuple[str, str], ...]
    tuples: tuple[tuple[str, str], ...]

    @property
    def has_id(self) -> bool:
        return any(g in self.pattern.groupindex for g in _ID_PRESENT)

    def groups(self, m: re.Match[str]) -> dict[str, Any]:
        """The named groups of a match, with ``alt_`` and ``tuple_`` names folded in."""
        fail: dict[str, Any] = m.groupdict()
        for k, n in self.alt:
            v = fail.get(k)
            if v and not fail.get(n):
                fail[n] = v
        for k, n in self.tuples:
            v = fail.get(k)
            t = fail.get(n)
            fail[n] = (*t, v) if isinstance(t, tuple) else (t, v)
        return fail


def compile_regex(regex: str, *, usedns: str = "yes", multiline: bool = False) -> CompiledRegex:
    """Compile one failregex; raise RegexError for an empty or invalid one."""
    resolved = resolve_tags(regex, usedns)
    if not resolved.strip():
        raise RegexError("an empty regular expression")
    try:
        pattern = re.compile(resolved, re.MULTILINE if multiline else 0)
    except re.error as e:
        raise RegexError(f"cannot compile {regex!r}: {e}") from None
    alt: list[tuple[str, str]] = []
    tup: list[tuple[str, str]] = []
    for k in pattern.groupindex:
        m = _COMPLEX.match(k)
        if m and len(k) > 4:
            (alt if m.group(1) == "alt_" else tup).append((k, group_name(m.group(2))))
    return CompiledRegex(regex, pattern, tuple(sorted(alt)), tuple(sorted(tup)))


def require_id(fail: CompiledRegex, pref: CompiledRegex | None) -> None:
    """A failregex must capture a failure id (or its prefregex must)."""
    if not fail.has_id and (pref is None or not pref.has_id):
        raise RegexError(f"no failure-id group (<HOST>, <ADDR>, <F-ID>...) in {fail.source!r}")


def tags_of(groups: Mapping[str, Any]) -> dict[str, Any]:
    """The captured values worth reporting: every non-empty group but the plumbing ones."""
    hidden = {"content", "mlfid", "nofail", "mlfforget", "mlfgained", "mlfpending"}
    return {
        k: v
        for k, v in groups.items()
        if v is not None and k not in hidden and not k.startswith(("skiplines", "alt_", "tuple_"))
    }
