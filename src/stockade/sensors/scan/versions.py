"""Service and version detection from nmap's probe database: which service answered, and how.

:class:`Matcher` holds a parsed :class:`~stockade.sensors.scan.probes_db.ProbeDB` and compiles a
probe's patterns (translated from Perl by :mod:`~stockade.sensors.scan.perl_re`) the first time
an answer to that probe is matched, then keeps them. :meth:`Matcher.identify` matches an answer
as nmap does: the probe's own ``match`` lines, then those of its ``fallback`` probes, then the
NULL probe's; the first hard match wins; a ``softmatch`` only names the service, and the next
probes are those that can tell its version. Version fields are filled from the groups (``$1``,
``$P(1)`` printable only, ``$SUBST(1,"_",".")``, ``$I(1,">")`` a big- or little-endian number);
of the CPE names, as nmap, one per part (application, hardware, OS), the last given.

:meth:`Matcher.next_probes` picks what else to send to a port: harmless TCP probes only (read-
only requests: :data:`HARMLESS`), listing the port in ``ports`` (``sslports`` over TLS), of
rarity up to ``intensity`` (nmap's default :data:`INTENSITY`), rarest last, at most ``limit``;
none to the ports the database's ``Exclude`` names.

:func:`load_probes` reads the file (nmap installs it at :data:`PROBES_FILE`), once per process.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import regex

from stockade.errors import StockadeError
from stockade.sensors.scan.perl_re import Untranslatable, translate
from stockade.sensors.scan.probes_db import Match, Probe, ProbeDB, ProbeFileError, parse_probes
from stockade.sensors.scan.report import Service

PROBES_FILE = Path("/usr/share/nmap/nmap-service-probes")
INTENSITY = 7  # nmap's default --version-intensity: probes of rarity up to this
FIELD_LIMIT = 120  # characters of one version field
MATCH_BUDGET = 0.05  # seconds one pattern may spend on one answer
#: probes that ask a service only to describe itself (a read-only request, a greeting, a
#: version or status query). Left out: those that make a service act (LPD's print-jobs command,
#: DistCCD's compile, SOCKS connects, printer and radio control, backdoor commands).
HARMLESS = frozenset(
    (
        "GenericLines", "GetRequest", "HTTPOptions", "RTSPRequest", "FourOhFourRequest", "Help",
        "RPCCheck", "DNSVersionBindReqTCP", "DNSStatusRequestTCP", "SSLSessionReq",
        "TLSSessionReq", "SSLv23SessionReq", "SMBProgNeg", "X11Probe", "LDAPSearchReq",
        "LDAPBindReq", "SIPOptions", "TerminalServerCookie", "TerminalServer", "Kerberos",
        "JavaRMI", "ms-sql-s", "oracle-tns", "redis-server", "Memcache", "mongodb", "afp",
        "giop", "NotesRPC", "NCP", "ajp", "docker", "epmd", "tor-versions", "drda",
        "minecraft-ping", "VersionRequest",
    )
)  # fmt: skip
_REF = re.compile(rb'\$(?:(\d)|P\((\d)\)|SUBST\((\d),"([^"]*)","([^"]*)"\)|I\((\d),"([<>])"\))')


def printable(data: bytes) -> str:
    """``data`` as text with every byte outside printable ASCII written ``\\xNN``."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in data)


def _number(data: bytes, order: bytes) -> bytes:
    if not data or len(data) > 8:
        return b""
    return str(int.from_bytes(data, "big" if order == b">" else "little")).encode()


def substitute(template: str, groups: tuple[bytes | None, ...]) -> str:
    """``template`` with ``$1``, ``$P(n)``, ``$SUBST(n,"a","b")`` and ``$I(n,"<")`` filled from
    ``groups`` (a group that did not take part, or does not exist, is empty)."""

    def group(n: bytes) -> bytes:
        i = int(n) - 1
        return (groups[i] or b"") if 0 <= i < len(groups) else b""

    def one(m: re.Match[bytes]) -> bytes:
        plain, p, sn, old, new, inum, order = m.groups()
        if plain:
            return group(plain)
        if p:
            return bytes(b for b in group(p) if 0x20 <= b < 0x7F)
        if sn:
            return group(sn).replace(old, new) if old else group(sn)
        return _number(group(inum), order)

    out = _REF.sub(one, template.encode("latin-1"))
    return printable(out).strip()[:FIELD_LIMIT]


def cpe_names(values: Iterable[str]) -> list[str]:
    """The ``cpe:/`` names as nmap reports them: one per part (``a`` application, ``h``
    hardware, ``o`` OS), the last given of each, in that order."""
    by_part = {v[:1]: v for v in values if v[:1] in ("a", "h", "o")}
    return ["cpe:/" + by_part[p] for p in "aho" if p in by_part]


def service_of(m: Match, found: Any) -> Service:
    groups = found.groups()
    f = {k: substitute(v, groups) for k, v in m.fields.items()}
    return Service(
        name=m.service,
        product=f.get("p", ""),
        version=f.get("v", ""),
        extrainfo=f.get("i", ""),
        hostname=f.get("h", ""),
        ostype=f.get("o", ""),
        devicetype=f.get("d", ""),
        cpe=cpe_names(substitute(c, groups) for c in m.cpe),
        soft=m.soft,
    )


class Pattern:
    """One compiled match pattern. A search of a service's answer may take at most
    ``MATCH_BUDGET`` seconds (the ``regex`` engine's timeout): a hostile service cannot stall a
    scan with an answer made to backtrack one of the database's patterns; it is just no match."""

    def __init__(self, compiled: Any, matcher: Matcher) -> None:
        self._compiled = compiled
        self._timed = isinstance(compiled, regex.Pattern)
        self._matcher = matcher

    def search(self, data: bytes) -> Any:
        if not self._timed:
            return self._compiled.search(data)
        try:
            return self._compiled.search(data, timeout=MATCH_BUDGET)
        except TimeoutError:
            self._matcher.slow += 1
            return None


class Matcher:
    """Matches answers against a probe database, compiling each probe's patterns on first use."""

    def __init__(self, db: ProbeDB) -> None:
        self.db = db
        self.tcp = {p.name: p for p in db.probes if p.proto == "TCP"}
        self._compiled: dict[str, list[tuple[Match, Pattern]]] = {}
        self.untranslatable: list[tuple[int, str]] = []  # line, why
        self.slow = 0  # searches stopped at MATCH_BUDGET

    def patterns(self, probe: Probe) -> list[tuple[Match, Pattern]]:
        got = self._compiled.get(probe.name)
        if got is None:  # built whole, then stored: scans of several hosts share a matcher
            got = []
            for m in probe.matches:
                pattern = self._compile(m)
                if pattern is not None:
                    got.append((m, pattern))
            self._compiled[probe.name] = got
        return got

    def _compile(self, m: Match) -> Pattern | None:
        flags = (re.I if "i" in m.flags else 0) | (re.S if "s" in m.flags else 0)
        try:
            text = translate(m.pattern.decode("latin-1")).encode("latin-1")
            checked = re.compile(text, flags)  # the translation targets re's syntax
        except (Untranslatable, re.error, OverflowError, RecursionError) as e:
            self.untranslatable.append((m.line, str(e)))
            return None
        try:
            return Pattern(regex.compile(text, flags | regex.V0), self)
        except (regex.error, OverflowError, RecursionError):
            return Pattern(checked, self)  # the few that regex reads otherwise: no time limit

    def compile_all(self) -> int:
        """Compile every TCP probe's patterns now; the number that compiled."""
        return sum(len(self.patterns(p)) for p in self.tcp.values())

    def identify(self, answer: bytes, probe: str = "NULL", soft: str = "") -> Service | None:
        """The service ``answer`` (to the probe named ``probe``) shows: a hard match, else a
        softmatch, else None. ``soft``: a service already softmatched (only its hard matches
        count then, as in nmap)."""
        if not answer:
            return None
        first_soft: Service | None = None
        for p in self._chain(probe):
            for m, pattern in self.patterns(p):
                if m.soft and (first_soft or soft):
                    continue
                if soft and m.service != soft:
                    continue
                found = pattern.search(answer)
                if found is None:
                    continue
                if not m.soft:
                    return service_of(m, found)
                first_soft = service_of(m, found)
        return first_soft

    def _chain(self, name: str) -> list[Probe]:
        """The probe, its fallbacks, then NULL (each once)."""
        names = [name, *(self.tcp[name].fallback if name in self.tcp else []), "NULL"]
        seen: list[Probe] = []
        for n in names:
            p = self.tcp.get(n)
            if p is not None and p not in seen:
                seen.append(p)
        return seen

    def next_probes(
        self, port: int, *, tls: bool = False, soft: str = "", done: frozenset[str] = frozenset(),
        limit: int = 3, intensity: int = INTENSITY,
    ) -> list[Probe]:  # fmt: skip
        """The harmless probes worth sending to ``port`` next, most likely first."""
        picked: list[Probe] = []
        if port in self.db.exclude_tcp:
            return picked
        for p in self.tcp.values():
            listed = port in (p.sslports if tls else p.ports)
            if p.name in done or p.name not in HARMLESS or not listed or p.rarity > intensity:
                continue
            if soft and not any(m.service == soft and not m.soft for m in p.matches):
                continue
            picked.append(p)
        picked.sort(key=lambda p: p.rarity)  # stable: file order within a rarity
        return picked[:limit]


def read_probes(path: Path) -> ProbeDB:
    """Parse the probe file at ``path``; StockadeError (one line) if it is unreadable or has
    no usable probe."""
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as e:
        raise StockadeError(
            f"{path}: cannot read nmap's service probes: {e.strerror}; install nmap "
            "(it ships this file) or scan without -sV"
        ) from None
    try:
        return parse_probes(text)
    except ProbeFileError as e:
        raise StockadeError(
            f"{path}:{e.line}: not an nmap-service-probes file ({e.why}); reinstall nmap"
        ) from None


@functools.cache
def load_probes(path: Path = PROBES_FILE) -> Matcher | None:
    """A matcher over the probe file at ``path``, read once per process; None when the file
    does not exist (version detection is then left out)."""
    if not path.exists():
        return None
    return Matcher(read_probes(path))
