"""ICMP and ICMPv6 echo requests, and the parsing of what comes back: echo replies and ICMP
errors (unreachable, time exceeded, parameter problem) with the probe they are about.

Everything here is pure (no I/O). Two ways in, as the kernel hands packets over:

- :func:`parse_ipv4` takes a whole IPv4 packet as a raw ``IPPROTO_ICMP`` socket delivers it
  (header included: the source address and TTL come from it);
- :func:`parse_icmp` takes a bare ICMP or ICMPv6 message, as raw ICMPv6 sockets and ICMP
  datagram ("ping") sockets deliver it, with the sender and the TTL / hop limit the caller read
  from the socket's ancillary data (:func:`ttl_from_ancillary`).

:func:`echo_in` wraps both for callers that want echoes only (traceroute's ICMP probes): an
:class:`Echo` or ``None``, never an exception.

The contract of both parsers: an :class:`Echo` or an :class:`IcmpError` for what a scanner can
use; ``None`` for well-formed packets of no use (not ICMP, redirects, neighbour discovery, …);
``ValueError`` for malformed bytes (truncated, bad lengths, a bad IPv4 checksum). Nothing else
is ever raised (fuzzed in the tests).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from stockade.sensors.scan.errqueue import SO_TIMESTAMPNS, parse_timestamp
from stockade.sensors.scan.inet import checksum

ECHO_REPLY4, ECHO_REQUEST4 = 0, 8
ECHO_REQUEST6, ECHO_REPLY6 = 128, 129
UNREACH4, TIME_EXCEEDED4, PARAM_PROBLEM4 = 3, 11, 12
UNREACH6, TIME_EXCEEDED6, PARAM_PROBLEM6 = 1, 3, 4
IP_RECVTTL = 12  # Linux; not exported by the socket module
SOL_RAW, ICMP_FILTER = 255, 1  # Linux: a raw IPv4 ICMP socket's filter of types
ICMP6_FILTER = 1  # Linux, at level IPPROTO_ICMPV6

# nmap's reason names for ICMP errors, by (type, code)
_REASONS4 = {
    (UNREACH4, 0): "net-unreach",
    (UNREACH4, 1): "host-unreach",
    (UNREACH4, 2): "proto-unreach",
    (UNREACH4, 3): "port-unreach",
    (UNREACH4, 6): "net-unreach",  # destination network unknown
    (UNREACH4, 7): "host-unreach",  # destination host unknown
    (UNREACH4, 9): "admin-prohibited",
    (UNREACH4, 10): "admin-prohibited",
    (UNREACH4, 13): "admin-prohibited",
}
_REASONS6 = {
    (UNREACH6, 0): "net-unreach",  # no route
    (UNREACH6, 1): "admin-prohibited",
    (UNREACH6, 3): "host-unreach",  # address unreachable
    (UNREACH6, 4): "port-unreach",
    (UNREACH6, 5): "admin-prohibited",  # source address failed policy
    (UNREACH6, 6): "admin-prohibited",  # reject route
    (PARAM_PROBLEM6, 1): "proto-unreach",  # unrecognised next header
}


@dataclass(frozen=True, slots=True)
class Echo:
    """An echo request or reply."""

    reply: bool
    source: str  # who sent it ('' when the caller did not say)
    ttl: int | None  # TTL / hop limit it arrived with, when known
    ident: int
    seq: int
    payload: bytes
    size: int  # bytes of ICMP message (header and payload), as ping prints it


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error about a packet we (or someone) sent: who complained, why, and the first
    bytes of that packet (its addresses, protocol, and ports or echo identifier/sequence)."""

    source: str
    ttl: int | None
    type: int
    code: int
    reason: str  # port-unreach, host-unreach, …, time-exceeded, param-problem, unreach
    orig_src: str
    orig_dst: str
    orig_proto: int  # IPPROTO_TCP / UDP / ICMP / ICMPV6 …
    orig_sport: int | None  # TCP/UDP source port, or the echo identifier
    orig_dport: int | None  # TCP/UDP destination port, or the echo sequence


Message = Echo | IcmpError


def echo_request(ident: int, seq: int, payload: bytes = b"", *, v6: bool = False) -> bytes:
    """An echo request. IPv4 carries its checksum; for ICMPv6 the kernel computes it (it needs
    the addresses), so it is left 0."""
    if not (0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF):
        raise ValueError("ident and seq are 16-bit numbers")
    kind = ECHO_REQUEST6 if v6 else ECHO_REQUEST4
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return head + payload
    return struct.pack("!BBHHH", kind, 0, checksum(head + payload), ident, seq) + payload


def parse_ipv4(packet: bytes) -> Message | None:
    """Parse a whole IPv4 packet from a raw ICMP socket (see the module's contract)."""
    if len(packet) < 20:
        raise ValueError("shorter than an IPv4 header")
    if packet[0] >> 4 != 4:
        raise ValueError("not an IPv4 packet")
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    if ihl < 20 or ihl > len(packet) or total < ihl:
        raise ValueError("bad IPv4 header length")
    if packet[9] != socket.IPPROTO_ICMP:
        return None
    # the kernel gives the packet as received; trust the shorter of its length and the buffer
    body = packet[ihl : min(total, len(packet))]
    if len(body) >= 4 and total <= len(packet) and checksum(body) != 0:
        raise ValueError("bad ICMP checksum")
    return parse_icmp(body, source=_ip4(packet[12:16]), ttl=packet[8], v6=False)


def parse_icmp(message: bytes, *, source: str, ttl: int | None, v6: bool) -> Message | None:
    """Parse a bare ICMP (``v6`` False) or ICMPv6 message (see the module's contract)."""
    if len(message) < 8:
        raise ValueError("shorter than an ICMP header")
    kind, code, _sum, a, b = struct.unpack("!BBHHH", message[:8])
    if v6:
        if kind in (ECHO_REQUEST6, ECHO_REPLY6):
            return Echo(kind == ECHO_REPLY6, source, ttl, a, b, message[8:], len(message))
        if kind in (UNREACH6, TIME_EXCEEDED6, PARAM_PROBLEM6):
            return _error(message, source, ttl, _reason(kind, code, _REASONS6, TIME_EXCEEDED6), v6)
        return None
    if kind in (ECHO_REQUEST4, ECHO_REPLY4):
        if code != 0:
            return None
        return Echo(kind == ECHO_REPLY4, source, ttl, a, b, message[8:], len(message))
    if kind in (UNREACH4, TIME_EXCEEDED4, PARAM_PROBLEM4):
        return _error(message, source, ttl, _reason(kind, code, _REASONS4, TIME_EXCEEDED4), v6)
    return None


def echo_in(packet: bytes, *, v6: bool, with_ip: bool = False) -> Echo | None:
    """The echo request or reply in ``packet`` (a whole IPv4 packet when ``with_ip``, else a
    bare ICMP or ICMPv6 message); None for anything else, malformed input included. For
    callers that match only echoes, such as traceroute's ICMP probes."""
    try:
        got = parse_ipv4(packet) if with_ip else parse_icmp(packet, source="", ttl=None, v6=v6)
    except ValueError:
        return None
    return got if isinstance(got, Echo) else None


def _reason(kind: int, code: int, table: dict[tuple[int, int], str], exceeded: int) -> str:
    if (kind, code) in table:
        return table[(kind, code)]
    if kind == exceeded:
        return "time-exceeded"
    return "param-problem" if kind in (PARAM_PROBLEM4, PARAM_PROBLEM6) else "unreach"


def _error(message: bytes, source: str, ttl: int | None, reason: str, v6: bool) -> IcmpError:
    kind, code = message[0], message[1]
    inner = message[8:]
    if v6:
        if len(inner) < 40 or inner[0] >> 4 != 6:
            raise ValueError("the ICMPv6 error does not quote an IPv6 header")
        proto, src, dst, rest = inner[6], _ip6(inner[8:24]), _ip6(inner[24:40]), inner[40:]
        echo = socket.IPPROTO_ICMPV6, ECHO_REQUEST6
    else:
        if len(inner) < 20 or inner[0] >> 4 != 4:
            raise ValueError("the ICMP error does not quote an IPv4 header")
        ihl = (inner[0] & 0x0F) * 4
        if ihl < 20 or ihl > len(inner):
            raise ValueError("the quoted IPv4 header has a bad length")
        proto, src, dst, rest = inner[9], _ip4(inner[12:16]), _ip4(inner[16:20]), inner[ihl:]
        echo = socket.IPPROTO_ICMP, ECHO_REQUEST4
    sport = dport = None
    if proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP) and len(rest) >= 4:
        sport, dport = struct.unpack("!HH", rest[:4])
    elif proto == echo[0] and len(rest) >= 8 and rest[0] == echo[1]:
        sport, dport = struct.unpack("!HH", rest[4:8])
    return IcmpError(source, ttl, kind, code, reason, src, dst, proto, sport, dport)


def ttl_from_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> int | None:
    """The TTL (``IP_TTL``, asked for with ``IP_RECVTTL``) or hop limit (``IPV6_HOPLIMIT``,
    asked for with ``IPV6_RECVHOPLIMIT``) in ``recvmsg``'s ancillary data; None if absent."""
    for level, kind, data in ancdata:
        if (level, kind) in (
            (socket.IPPROTO_IP, socket.IP_TTL),
            (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT),
        ) and len(data) >= 4:
            value = int.from_bytes(data[:4], sys.byteorder, signed=True)
            return value if 0 <= value <= 255 else None
    return None


def stamp_from_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time (``SCM_TIMESTAMPNS``, asked for with ``SO_TIMESTAMPNS``) in
    ``recvmsg``'s ancillary data, as seconds since the epoch; None if absent."""
    for level, kind, data in ancdata:
        if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
            with contextlib.suppress(ValueError):
                return parse_timestamp(data)
    return None


def icmp4_filter(allowed: Iterable[int]) -> bytes:
    """The ``ICMP_FILTER`` socket option value (level ``SOL_RAW``) passing only the ICMP types
    ``allowed`` (below 32) to a raw IPv4 ICMP socket."""
    blocked = 0xFFFFFFFF
    for kind in allowed:
        blocked &= ~(1 << kind) & 0xFFFFFFFF
    return struct.pack("=I", blocked)


def icmp6_filter(allowed: Iterable[int]) -> bytes:
    """The ``ICMP6_FILTER`` socket option value passing only the ICMPv6 types ``allowed``
    (others, such as neighbour discovery, never reach the socket)."""
    words = [0xFFFFFFFF] * 8
    for kind in allowed:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


def _ip4(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def _ip6(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))
