"""The absolute allowlist: addresses stockade never bans, whoever asks.

It holds three kinds of entry, checked in this order:

- **loopback**, always: ``127.0.0.0/8``, ``::1`` and ``::ffff:127.0.0.0/104``;
- the **ignoreip** entries of the configuration: single addresses and CIDR ranges, IPv4 or IPv6,
  and host names, which are resolved once, when the allowlist is built (``socket.getaddrinfo``);
- with **ignoreself** (on by default), every address of this host's interfaces, read with
  ``psutil.net_if_addrs()`` when the allowlist is built and again by :meth:`Allowlist.refresh`.

A ban is refused when its network *overlaps* an entry: a ``/64`` that holds an allowlisted address
is refused as a whole, never trimmed. An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is the
IPv4 address it carries, on either side: banning ``::ffff:127.0.0.1`` is banning loopback.

Everything here is pure except two edges, both injectable: resolving host names and reading the
host's addresses. Tests replace them; the real ones are tested separately inside a namespace.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from stockade.errors import ConfigError
from stockade.responders.base import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
HostAddresses = Callable[[], Iterable[str]]
"""Returns the addresses of this host as text (an IPv6 scope such as ``%eth0`` is allowed)."""
Resolver = Callable[[str], Sequence[str]]
"""Returns the addresses a host name resolves to, as text; raises ``OSError`` when it cannot."""
Kind = Literal["loopback", "ignoreip", "self"]

log = logging.getLogger("stockade.respond")

LOOPBACK = ("127.0.0.0/8", "::1/128")  # ::ffff:127.0.0.0/104 follows: see _with_mapped_twin
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NUMERIC = re.compile(r"[0-9.]+(/\d+)?|.*[:/].*")


@dataclass(frozen=True, slots=True)
class Entry:
    """One allowlisted network and how a refusal names it."""

    network: Network
    label: str  # "10.0.0.0/8", "localhost (127.0.0.1)"
    kind: Kind


def read_host_addresses() -> list[str]:
    """Every IPv4 and IPv6 address of this host's interfaces (in this network namespace)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]

    families = (socket.AF_INET, socket.AF_INET6)
    return [
        str(addr.address)
        for addrs in psutil.net_if_addrs().values()
        for addr in addrs
        if addr.family in families
    ]


def resolve_name(name: str) -> list[str]:
    """The addresses ``name`` resolves to (``/etc/hosts``, then DNS); ``OSError`` when none."""
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def normalise(network: Network) -> Network:
    """An IPv4-mapped IPv6 network (``::ffff:a.b.c.d/96+n``) as the IPv4 network it carries."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        low = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((low, network.prefixlen - 96))
    return network


def as_network(value: Network | Address | str) -> Network:
    """A network from an address, a network or their text (host bits are dropped)."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    text = str(value).split("%", 1)[0]  # an IPv6 scope ("fe80::1%eth0") is not part of it
    return ipaddress.ip_network(text, strict=False)


def show(network: Network) -> str:
    """A single address without its /32 or /128, anything else in CIDR form."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


class Allowlist:
    """Networks no ban may touch. Build one with :meth:`from_entries`."""

    def __init__(
        self,
        entries: Iterable[Entry],
        *,
        ignoreself: bool = True,
        host_addresses: HostAddresses = read_host_addresses,
        unresolved: Sequence[str] = (),
    ) -> None:
        self._static = tuple(_with_mapped_twins(_loopback_entries() + list(entries)))
        self._ignoreself = ignoreself
        self._host_addresses = host_addresses
        self._self: tuple[Entry, ...] = ()
        self.unresolved = tuple(unresolved)
        self.refresh()

    @classmethod
    def from_entries(
        cls,
        entries: Iterable[str],
        *,
        ignoreself: bool = True,
        host_addresses: HostAddresses = read_host_addresses,
        resolve: Resolver = resolve_name,
    ) -> Allowlist:
        """Build from ``ignoreip`` entries: addresses, CIDR ranges and host names.

        An entry may hold several, separated by spaces or commas (as fail2ban writes them). A
        malformed address or range raises :class:`ConfigError`; a name that does not resolve is
        logged, kept in :attr:`unresolved` and protects nothing.
        """
        parsed: list[Entry] = []
        unresolved: list[str] = []
        for text in _split(entries):
            if _NUMERIC.fullmatch(text):
                net = _parse_network(text)
                parsed.append(Entry(net, str(net) if "/" in text else show(net), "ignoreip"))
                continue
            found = _resolve(text, resolve)
            if not found:
                unresolved.append(text)
            parsed += [Entry(net, f"{text} ({show(net)})", "ignoreip") for net in found]
        return cls(
            parsed, ignoreself=ignoreself, host_addresses=host_addresses, unresolved=unresolved
        )

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry in force, loopback first, then ignoreip, then this host's addresses."""
        return self._static + self._self

    def refresh(self) -> None:
        """Read this host's addresses again (after an interface gained or lost one)."""
        if not self._ignoreself:
            return
        networks = {normalise(as_network(text)) for text in self._host_addresses()}
        ordered = sorted(networks, key=lambda n: (n.version, n))
        self._self = tuple(_with_mapped_twins([Entry(n, show(n), "self") for n in ordered]))

    def covers(self, network: Network | Address | str) -> str | None:
        """Why ``network`` must not be banned, or ``None`` when it may be.

        Covered means *overlapping*: inside an entry, equal to it, or containing it.
        """
        ban = normalise(as_network(network))
        low, high = int(ban.network_address), int(ban.broadcast_address)
        for entry in self.entries:
            net = entry.network
            if net.version != ban.version:
                continue
            if low <= int(net.broadcast_address) and int(net.network_address) <= high:
                return _reason(ban, entry)
        return None


def _reason(ban: Network, entry: Entry) -> str:
    inside = ban.prefixlen >= entry.network.prefixlen
    shown = show(ban)
    if entry.kind == "loopback":
        return f"{shown} is loopback" if inside else f"{shown} contains loopback {entry.label}"
    if entry.kind == "ignoreip":
        verb = "is in" if inside else "contains"
        return f"{shown} {verb} ignoreip {entry.label}"
    if inside:
        return f"{shown} is an address of this host"
    return f"{shown} contains {entry.label}, an address of this host"


def _loopback_entries() -> list[Entry]:
    networks = [ipaddress.ip_network(text) for text in LOOPBACK]
    return [Entry(net, show(net), "loopback") for net in networks]


def _with_mapped_twins(entries: Iterable[Entry]) -> list[Entry]:
    """Each IPv4 entry followed by its IPv4-mapped IPv6 twin, so that a wide IPv6 ban which
    spans ``::ffff:0:0/96`` is compared with the IPv4 entries too."""
    out: list[Entry] = []
    for entry in entries:
        out.append(entry)
        net = entry.network
        if isinstance(net, ipaddress.IPv4Network):
            mapped = int(_MAPPED.network_address) | int(net.network_address)
            twin = ipaddress.IPv6Network((mapped, net.prefixlen + 96))
            out.append(Entry(twin, entry.label, entry.kind))
    return out


def _split(entries: Iterable[str]) -> list[str]:
    return [part for text in entries for part in re.split(r"[\s,]+", text.strip()) if part]


def _parse_network(text: str) -> Network:
    try:
        return normalise(as_network(text))
    except ValueError as exc:
        raise ConfigError(
            f"ignoreip entry {text!r}: {exc}; write an address, a CIDR range or a host name"
        ) from None


def _resolve(name: str, resolve: Resolver) -> list[Network]:
    try:
        found = [normalise(as_network(addr)) for addr in resolve(name)]
    except (OSError, UnicodeError, ValueError) as exc:
        log.warning("ignoreip entry %r does not resolve (%s); it protects nothing", name, exc)
        return []
    if not found:
        log.warning("ignoreip entry %r resolves to no address; it protects nothing", name)
    return sorted(set(found), key=lambda n: (n.version, n))
