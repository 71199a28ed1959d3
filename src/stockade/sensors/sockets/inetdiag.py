"""The kernel's socket table over netlink (sock_diag, ``inet_diag``), as ``ss`` reads it:
messages in, records out — no I/O here (:mod:`stockade.sensors.sockets.table` does the asking).

Unlike /proc/net/tcp, sock_diag gives a listening socket's accept-queue limit (``ss``'s Send-Q of
a listener) and its current accept queue (Recv-Q); every other field is the same.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from stockade.sensors.sockets.nlevents import NLMSG_DONE, SOCK_DIAG_BY_FAMILY, message, messages
from stockade.sensors.sockets.procnet import TCP_STATES, RawSocket

NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
ALL_STATES = 0xFFFFFFFF

_REQ = struct.Struct("=BBBxI48x")  # family, protocol, extensions, states, an empty socket id
_MSG = struct.Struct("=BBBB")  # family, state, timer, retrans
_ID = struct.Struct(">HH16s16s")  # sport, dport, src, dst (then interface and cookie)
_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_TAIL_AT = _MSG.size + 48
_MSG_SIZE = _TAIL_AT + _TAIL.size
_ERRNO = struct.Struct("=i")

PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


class DiagError(Exception):
    """The kernel refused the dump (``errno``): e.g. ENOENT when udp_diag is not loaded."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


@dataclass
class Dump:
    """What the datagrams of one dump said so far."""

    sockets: list[RawSocket]
    done: bool = False


def dump_request(proto: str, family: int, seq: int = 1) -> bytes:
    """A request for every socket of ``proto`` ("tcp"/"udp") and ``family`` (4/6)."""
    body = _REQ.pack(FAMILIES[family], PROTOCOLS[proto], 0, ALL_STATES)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return message(SOCK_DIAG_BY_FAMILY, body, flags=flags, seq=seq)


def _address(raw: bytes, family: int) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw))


def parse_dump(data: bytes, proto: str, into: Dump) -> Dump:
    """Add the sockets of one datagram of a dump to ``into``; ``done`` once the kernel says so.
    Raises :class:`DiagError` for an error message and ValueError for a malformed one."""
    for kind, body in messages(data, strict=True):
        if kind == NLMSG_DONE:
            into.done = True
            return into
        if kind == NLMSG_ERROR:
            if len(body) < _ERRNO.size:
                raise ValueError("netlink error message without its code")
            (err,) = _ERRNO.unpack_from(body)
            if err:
                raise DiagError(-err)
            continue
        if kind != SOCK_DIAG_BY_FAMILY:
            continue
        if len(body) < _MSG_SIZE:
            raise ValueError(f"inet_diag message of {len(body)} bytes (at least {_MSG_SIZE})")
        fam, state, _, _ = _MSG.unpack_from(body)
        if fam not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"inet_diag message of address family {fam}")
        sport, dport, src, dst = _ID.unpack_from(body, _MSG.size)
        _, rqueue, wqueue, uid, inode = _TAIL.unpack_from(body, _TAIL_AT)
        into.sockets.append(
            RawSocket(
                proto=proto,
                family=4 if fam == socket.AF_INET else 6,
                local_address=_address(src, fam),
                local_port=sport,
                remote_address=_address(dst, fam),
                remote_port=dport,
                state=TCP_STATES.get(state, f"UNKNOWN-{state}"),
                send_q=wqueue,
                recv_q=rqueue,
                uid=uid,
                inode=inode,
            )
        )
    return into
