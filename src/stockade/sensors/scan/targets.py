"""Scan targets in nmap's syntax: addresses (IPv4, IPv6), CIDR ranges, address ranges
(``10.0.0.1-10.0.0.20``, and per-octet ``10.0.0-3.1-254``, ``10.0.0.*``, ``10.0.0.1,3,5``),
host names, target files (``-iL FILE``: whitespace-separated, ``#`` comments) and exclusions.

Parsing is pure; host names are resolved through the ``resolve`` function given to
:func:`expand` (the command line passes one that asks the system resolver).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from stockade.errors import StockadeError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]
#: More addresses than this in one run is almost certainly a typo (a /8 is 16.7 million).
MAX_ADDRESSES = 1 << 20
_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")
_OCTET = re.compile(
    r"^(?:\*|\d{1,3}(?:-\d{0,3})?|-\d{1,3})(?:,(?:\d{1,3}(?:-\d{0,3})?|-\d{1,3}))*$"
)


@dataclass(frozen=True, slots=True)
class Target:
    """One address to scan, with the name it was asked by (or '')."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Spec:
    """One target as written: the text, and its addresses unless it is a host name."""

    text: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    octets: tuple[tuple[int, ...], ...] = ()  # per-octet IPv4 ranges
    first_last: tuple[Address, Address] | None = None
    hostname: str = ""

    def size(self) -> int:
        if self.networks:
            return sum(n.num_addresses for n in self.networks)
        if self.octets:
            n = 1
            for o in self.octets:
                n *= len(o)
            return n
        if self.first_last:
            return int(self.first_last[1]) - int(self.first_last[0]) + 1
        return 1

    def addresses(self) -> Iterator[Address]:
        if self.networks:
            for net in self.networks:
                if net.num_addresses == 1:
                    yield net.network_address
                elif net.version == 4 and net.prefixlen < 31:
                    yield from net.hosts()  # as nmap: not the network and broadcast address
                else:
                    yield from net
        elif self.octets:
            a, b, c, d = self.octets
            for w in a:
                for x in b:
                    for y in c:
                        for z in d:
                            yield ipaddress.IPv4Address(f"{w}.{x}.{y}.{z}")
        elif self.first_last:
            lo, hi = self.first_last
            for i in range(int(lo), int(hi) + 1):
                yield ipaddress.ip_address(i) if lo.version == 4 else ipaddress.IPv6Address(i)


def _octet(text: str, spec: str, what: str) -> tuple[int, ...]:
    if text == "*":
        return tuple(range(256))
    values: set[int] = set()
    for part in text.split(","):
        lo_text, sep, hi_text = part.partition("-")
        lo = int(lo_text) if lo_text else 0
        hi = (int(hi_text) if hi_text else 255) if sep else lo
        if not (0 <= lo <= hi <= 255):
            raise StockadeError(f"{what} {spec!r}: octet {part!r} must be within 0-255, low-high")
        values.update(range(lo, hi + 1))
    return tuple(sorted(values))


def parse_spec(text: str, what: str = "target") -> Spec:
    """Parse one target; a malformed one raises StockadeError saying what is accepted."""
    t = text.strip()
    hint = "write an address, a CIDR range (10.0.0.0/24), a range (10.0.0.1-20) or a host name"
    if not t:
        raise StockadeError(f"{what}: empty target; {hint}")
    if "/" in t:
        try:
            return Spec(t, networks=(ipaddress.ip_network(t, strict=False),))
        except ValueError as e:
            raise StockadeError(f"{what} {t!r}: {e}; {hint}") from None
    try:
        return Spec(t, networks=(ipaddress.ip_network(t),))
    except ValueError:
        pass
    if "-" in t and t.count("-") == 1 and ":" not in t:
        lo_text, _, hi_text = t.partition("-")
        try:  # 10.0.0.1-10.0.0.20
            lo, hi = ipaddress.ip_address(lo_text), ipaddress.ip_address(hi_text)
        except ValueError:
            pass
        else:
            if lo.version != hi.version or int(lo) > int(hi):
                raise StockadeError(f"{what} {t!r}: the range is reversed or mixes IPv4 and IPv6")
            return Spec(t, first_last=(lo, hi))
    if ":" in t and "-" in t:  # IPv6 range
        lo_text, _, hi_text = t.partition("-")
        try:
            lo6, hi6 = ipaddress.IPv6Address(lo_text), ipaddress.IPv6Address(hi_text)
        except ValueError:
            raise StockadeError(f"{what} {t!r}: not an IPv6 range; {hint}") from None
        if int(lo6) > int(hi6):
            raise StockadeError(f"{what} {t!r}: the range is reversed")
        return Spec(t, first_last=(lo6, hi6))
    parts = t.split(".")
    if len(parts) == 4 and all(_OCTET.match(p) for p in parts) and not t.replace(".", "").isdigit():
        return Spec(t, octets=tuple(_octet(p, t, what) for p in parts))
    if _NAME.fullmatch(t) and not t.replace(".", "").isdigit():
        return Spec(t, hostname=t.rstrip(".").lower())
    raise StockadeError(f"{what} {t!r}: not a target; {hint}")


def parse_target_file(text: str, source: str) -> list[Spec]:
    """The targets of an ``-iL`` file: whitespace-separated, ``#`` starts a comment."""
    specs = []
    for n, line in enumerate(text.splitlines(), 1):
        for word in line.partition("#")[0].split():
            specs.append(parse_spec(word, f"{source}:{n}: target"))
    return specs


def expand(
    specs: Sequence[Spec],
    exclude: Sequence[Spec] = (),
    *,
    resolve: Resolver | None = None,
    limit: int = MAX_ADDRESSES,
) -> list[Target]:
    """Every address of ``specs`` once, in order, less those of ``exclude``."""
    total = sum(s.size() for s in specs)
    if total > limit:
        raise StockadeError(
            f"targets: {total:,} addresses is more than the limit of {limit:,}; "
            "narrow the ranges or split the scan"
        )
    excluded_nets = [n for s in exclude for n in s.networks]
    excluded: set[str] = set()
    for s in exclude:
        if not s.networks:
            excluded.update(str(a) for a in s.addresses())
        if s.hostname and resolve is not None:
            excluded.update(resolve(s.hostname))
    out: list[Target] = []
    seen: set[str] = set()

    def add(addrs: Iterable[str], name: str) -> None:
        for a in addrs:
            if a in seen or a in excluded:
                continue
            ip = ipaddress.ip_address(a)
            if any(ip.version == n.version and ip in n for n in excluded_nets):
                continue
            seen.add(a)
            out.append(Target(a, name))

    for s in specs:
        if s.hostname:
            if resolve is None:
                raise StockadeError(f"target {s.text!r}: host names cannot be resolved here")
            addrs = resolve(s.hostname)
            if not addrs:
                raise StockadeError(f"target {s.text!r}: the name does not resolve")
            add(addrs[:1], s.hostname)  # as nmap: the first address
        else:
            add((str(a) for a in s.addresses()), "")
    return out


def resolve_name(name: str) -> list[str]:
    """The addresses ``name`` resolves to (the system's resolver, in its order); [] if none."""
    import socket

    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))
