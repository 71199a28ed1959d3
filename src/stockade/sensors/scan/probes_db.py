"""nmap's service probe database (``nmap-service-probes``) as plain data; a parser without I/O.

The format, one directive a line (``#`` starts a comment)::

    Probe TCP GetRequest q|GET / HTTP/1.0\\r\\n\\r\\n|
    rarity 1
    ports 80,8000-8010
    sslports 443
    totalwaitms 6000
    fallback GetRequest
    match ssh m|^SSH-([\\d.]+)-OpenSSH_([\\w._-]+)\\r?\\n| p/OpenSSH/ v/$2/ i/protocol $1/
    softmatch ftp m/^220[- ]/i

Every directive after a ``Probe`` belongs to that probe; ``Exclude`` (first) names ports that
get no probe at all (printers, which print whatever they receive). A ``match`` line holds the
service, the pattern ``m<d>regex<d>flags`` (any delimiter; flags ``i`` and ``s``) and version fields
``X<d>text<d>`` (``p`` product, ``v`` version, ``i`` extra info, ``h`` host name, ``o`` OS,
``d`` device type, and ``cpe:<d>…<d>`` — ``cpe:/a:openbsd:openssh:$2/`` — any number of
times, optionally followed by ``a``).

:func:`parse_probes` reads a whole file's text: a malformed line is skipped and counted (with
its number and why, in :attr:`ProbeDB.skipped`); a text without a single usable ``Probe`` is
unusable and raises :class:`ProbeFileError` naming the line. Patterns stay text here; compiling
them (lazily) is :mod:`~stockade.sensors.scan.versions`' job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FIELDS = frozenset("pvihod")
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
_SIMPLE_ESCAPES = {"\\": 0x5C, "0": 0, "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


class ProbeFileError(ValueError):
    """The text is no usable probe database; ``line`` is the line that shows it (1-based)."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(f"line {line}: {why}")
        self.line, self.why = line, why


@dataclass
class Match:
    """One ``match`` or ``softmatch`` line. ``compiled`` is filled in on first use."""

    service: str
    pattern: bytes  # the regex text as written (Perl syntax), in bytes
    flags: str  # "", "i", "s", "is"
    soft: bool = False
    fields: dict[str, str] = field(default_factory=dict)  # p v i h o d → template
    cpe: list[str] = field(default_factory=list)  # templates, without the "cpe:/" prefix
    line: int = 0


@dataclass
class Probe:
    """One ``Probe`` with its directives and matches."""

    proto: str  # TCP | UDP
    name: str
    payload: bytes
    no_payload: bool = False
    ports: frozenset[int] = frozenset()
    sslports: frozenset[int] = frozenset()
    rarity: int = 5  # nmap's default for a probe without one
    totalwaitms: int = 0  # 0: not given
    fallback: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    line: int = 0


@dataclass
class ProbeDB:
    """The probes in file order, with the lines that were skipped (number, why)."""

    probes: list[Probe] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    exclude_tcp: frozenset[int] = frozenset()  # ``Exclude``: ports no probe is sent to

    def probe(self, name: str, proto: str = "TCP") -> Probe | None:
        for p in self.probes:
            if p.name == name and p.proto == proto:
                return p
        return None

    @property
    def match_count(self) -> int:
        return sum(len(p.matches) for p in self.probes)


def unescape(text: str) -> bytes:
    """A probe string's C-style escapes (``\\r \\n \\t \\0 \\xHH \\\\`` …) as bytes; any other
    escaped character stands for itself. Raises ValueError on a bad ``\\x``."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError("a lone backslash at the end")
        e = text[i + 1]
        if e == "x":
            hx = text[i + 2 : i + 4]
            if not _HEX.fullmatch(hx):
                raise ValueError(f"\\x needs two hex digits, got {hx!r}")
            out.append(int(hx, 16))
            i += 4
            continue
        out += bytes([_SIMPLE_ESCAPES[e]]) if e in _SIMPLE_ESCAPES else e.encode("latin-1")
        i += 2
    return bytes(out)


def parse_ports(text: str) -> frozenset[int]:
    """``21,43,110-113`` as a set of port numbers; ValueError on anything else."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"bad port list item {part!r}")
        a, b = int(lo), int(hi) if dash else int(lo)
        if not 0 <= a <= b <= 65535:
            raise ValueError(f"bad port range {part!r}")
        out.update(range(a, b + 1))
    return frozenset(out)


def _delimited(text: str, start: int) -> tuple[str, int]:
    """The text between the delimiter at ``start`` and the next one; and the index after it."""
    if start >= len(text):
        raise ValueError("a delimiter is missing")
    d = text[start]
    end = text.find(d, start + 1)
    if end < 0:
        raise ValueError(f"no closing {d!r}")
    return text[start + 1 : end], end + 1


def parse_match(rest: str, soft: bool, line: int = 0) -> Match:
    """The part of a ``match``/``softmatch`` line after the keyword; ValueError if malformed."""
    service, _, spec = rest.strip().partition(" ")
    spec = spec.lstrip()
    if not service or not spec.startswith("m") or len(spec) < 2:
        raise ValueError("expected SERVICE m<d>REGEX<d>")
    pattern, i = _delimited(spec, 1)
    j = i
    while j < len(spec) and spec[j] in "is":
        j += 1
    flags = spec[i:j]
    if j < len(spec) and not spec[j].isspace():
        raise ValueError(f"unknown regex flag {spec[j]!r}")
    m = Match(service, pattern.encode("latin-1"), flags, soft, line=line)
    _version_fields(spec[j:], m)
    return m


def _version_fields(text: str, m: Match) -> None:
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text.startswith("cpe:", i):
            value, i = _delimited(text, i + 4)
            if i < len(text) and text[i] == "a":
                i += 1
            m.cpe.append(value)
        elif text[i] in FIELDS:
            key = text[i]
            m.fields[key], i = _delimited(text, i + 1)
        else:
            raise ValueError(f"unknown version field at {text[i : i + 10]!r}")
        if i < len(text) and not text[i].isspace():
            raise ValueError(f"junk after a version field: {text[i : i + 10]!r}")


def _probe(rest: str, line: int) -> Probe:
    proto, _, rest = rest.strip().partition(" ")
    name, _, spec = rest.strip().partition(" ")
    spec = spec.strip()
    if proto not in ("TCP", "UDP") or not name or not spec.startswith("q"):
        raise ValueError("expected Probe TCP|UDP NAME q<d>STRING<d>")
    raw, i = _delimited(spec, 1)
    tail = spec[i:].strip()
    if tail not in ("", "no-payload"):
        raise ValueError(f"junk after the probe string: {tail!r}")
    return Probe(proto, name, unescape(raw), no_payload=bool(tail), line=line)


def _directive(probe: Probe, word: str, rest: str, line: int) -> None:
    rest = rest.strip()
    if word in ("match", "softmatch"):
        probe.matches.append(parse_match(rest, word == "softmatch", line))
    elif word == "ports":
        probe.ports = parse_ports(rest)
    elif word == "sslports":
        probe.sslports = parse_ports(rest)
    elif word in ("rarity", "totalwaitms", "tcpwrappedms"):
        if not rest.isdigit():
            raise ValueError(f"{word} needs a whole number, got {rest!r}")
        if word == "rarity":
            probe.rarity = int(rest)
            if not 1 <= probe.rarity <= 9:
                raise ValueError(f"rarity must be 1 to 9, got {rest}")
        elif word == "totalwaitms":
            probe.totalwaitms = int(rest)
    elif word == "fallback":
        probe.fallback = [n for n in rest.replace(" ", "").split(",") if n]
    else:
        raise ValueError(f"unknown directive {word!r}")


def parse_line(db: ProbeDB, current: Probe | None, text: str, line: int) -> Probe | None:
    """Apply one line to ``db``; returns the probe later lines belong to. Raises ValueError
    for a malformed line (the caller skips and counts it)."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return current
    word, _, rest = stripped.partition(" ")
    if word == "Probe":
        probe = _probe(rest, line)
        db.probes.append(probe)
        return probe
    if word == "Exclude":
        tcp = [p for p in rest.replace(" ", "").split(",") if not p.startswith("U:")]
        db.exclude_tcp |= parse_ports(",".join(p.removeprefix("T:") for p in tcp)) if tcp else set()
        return current
    if current is None:
        raise ValueError(f"{word!r} before any Probe")
    _directive(current, word, rest, line)
    return current


def parse_probes(text: str) -> ProbeDB:
    """The probe database in ``text`` (the file decoded as latin-1, so any byte survives)."""
    db = ProbeDB()
    current: Probe | None = None
    for number, raw in enumerate(text.split("\n"), 1):  # nmap ends lines at \n only
        try:
            current = parse_line(db, current, raw, number)
        except ValueError as e:
            db.skipped.append((number, str(e)))
    if not db.probes:
        line, why = db.skipped[0] if db.skipped else (1, "no Probe line")
        raise ProbeFileError(line, f"no usable Probe directive ({why})")
    return db
