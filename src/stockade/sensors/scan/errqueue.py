"""The kernel's error queue (``IP_RECVERR``/``IPV6_RECVERR``): parsing its ancillary data, and
what an ICMP error it reports says about the probe that caused it.

With ``IP_RECVERR`` set on a socket, the kernel queues each ICMP error about a packet the socket
sent; ``recvmsg(..., MSG_ERRQUEUE)`` returns it with a control message holding a
``sock_extended_err`` (errno, origin, ICMP type and code, info) followed by the sockaddr of the
host that sent the ICMP message (the "offender"), and, with ``SO_TIMESTAMPNS``, the time it
arrived. Everything here is pure: it takes the bytes ``recvmsg`` gave.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# Linux constants the socket module does not export
IP_RECVERR, IPV6_RECVERR, SOL_IPV6 = 11, 25, 41
SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS, the control message type
ORIGIN_LOCAL, ORIGIN_ICMP, ORIGIN_ICMP6 = 1, 2, 3  # SO_EE_ORIGIN_*

_TIME_EXCEEDED = {False: 11, True: 3}
_UNREACHABLE = {False: 3, True: 1}
_PORT_UNREACHABLE = {False: 3, True: 4}
_PACKET_TOO_BIG6 = 2
_FRAG_NEEDED = 4

# traceroute's marks for the codes of "destination unreachable", ICMP and ICMPv6
_MARKS4 = {
    0: "!N", 1: "!H", 2: "!P", 5: "!S", 6: "!N", 7: "!H", 8: "!N", 9: "!X", 10: "!X",
    11: "!N", 12: "!H", 13: "!X", 14: "!V", 15: "!C",
}  # fmt: skip
_MARKS6 = {0: "!N", 1: "!X", 2: "!H", 3: "!H"}  # others: !<code>, as traceroute prints them

_EXT_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err (host byte order)
_TIMESPEC = struct.Struct("@ll")  # struct timespec: two C longs


@dataclass(frozen=True)
class ExtendedError:
    """One ``sock_extended_err`` from the error queue, with its offender's address."""

    errno: int
    origin: int  # ORIGIN_LOCAL | ORIGIN_ICMP | ORIGIN_ICMP6 (0: none)
    type: int  # ICMP(v6) type and code, for the ICMP origins
    code: int
    info: int  # the next-hop MTU for "fragmentation needed" / "packet too big"
    offender: str | None  # who sent the ICMP message; None when the kernel gives no address


@dataclass(frozen=True)
class Verdict:
    """What an ICMP error says about a probe: a router (time exceeded) or the end of the path."""

    mark: str  # "" or traceroute's mark: !H !N !P !X !S !V !C !F-<mtu> !<code>
    final: bool


def parse_sockaddr(data: bytes) -> str | None:
    """The address of a ``sockaddr_in``/``sockaddr_in6`` (family in host order); None for
    AF_UNSPEC. ``ValueError`` when too short or of another family."""
    if len(data) < 2:
        raise ValueError(f"sockaddr: {len(data)} bytes, need 2 for the family")
    (family,) = struct.unpack_from("=H", data)
    if family == 0:
        return None
    if family == socket.AF_INET:
        if len(data) < 8:
            raise ValueError(f"sockaddr_in: {len(data)} bytes, need 8")
        return str(ipaddress.IPv4Address(data[4:8]))
    if family == socket.AF_INET6:
        if len(data) < 24:
            raise ValueError(f"sockaddr_in6: {len(data)} bytes, need 24")
        return str(ipaddress.IPv6Address(data[8:24]))
    raise ValueError(f"sockaddr: unknown address family {family}")


def parse_extended_error(data: bytes) -> ExtendedError:
    """An ``IP_RECVERR``/``IPV6_RECVERR`` control message: ``sock_extended_err`` then the
    offender's sockaddr. ``ValueError`` when malformed."""
    if len(data) < _EXT_ERR.size:
        raise ValueError(f"sock_extended_err: {len(data)} bytes, need {_EXT_ERR.size}")
    err, origin, typ, code, _pad, info, _data = _EXT_ERR.unpack_from(data)
    rest = data[_EXT_ERR.size :]
    offender = parse_sockaddr(rest) if rest else None
    return ExtendedError(err, origin, typ, code, info, offender)


def parse_timestamp(data: bytes) -> float:
    """An ``SCM_TIMESTAMPNS`` control message: seconds since the epoch."""
    if len(data) < _TIMESPEC.size:
        raise ValueError(f"timespec: {len(data)} bytes, need {_TIMESPEC.size}")
    sec, nsec = _TIMESPEC.unpack_from(data)
    if not 0 <= nsec < 1_000_000_000:
        raise ValueError(f"timespec: {nsec} nanoseconds")
    return float(sec + nsec / 1e9)


def parse_ancillary(
    ancdata: Sequence[tuple[int, int, bytes]],
) -> tuple[ExtendedError | None, float | None]:
    """The extended error and the arrival time (seconds since the epoch) in what ``recvmsg``
    returned; None for what is missing. Malformed messages count as missing."""
    error: ExtendedError | None = None
    stamp: float | None = None
    for level, kind, data in ancdata:
        with contextlib.suppress(ValueError):
            if (level, kind) in ((socket.SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
                error = parse_extended_error(data)
            elif (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                stamp = parse_timestamp(data)
    return error, stamp


def classify(err: ExtendedError) -> Verdict | None:
    """What an ICMP error means for the probe it quotes; None when it says nothing about the
    path (local errors, redirects, parameter problems …)."""
    if err.origin not in (ORIGIN_ICMP, ORIGIN_ICMP6):
        return None
    v6 = err.origin == ORIGIN_ICMP6
    if err.type == _TIME_EXCEEDED[v6]:
        return Verdict("", final=False)
    if v6 and err.type == _PACKET_TOO_BIG6:
        return Verdict(f"!F-{err.info}", final=True)
    if err.type != _UNREACHABLE[v6]:
        return None
    if err.code == _PORT_UNREACHABLE[v6]:
        return Verdict("", final=True)
    if not v6 and err.code == _FRAG_NEEDED:
        return Verdict(f"!F-{err.info}", final=True)
    return Verdict((_MARKS6 if v6 else _MARKS4).get(err.code, f"!<{err.code}>"), final=True)
