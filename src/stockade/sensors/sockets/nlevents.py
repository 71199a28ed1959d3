"""The kernel's event messages that may mean a listener came or went: bytes in, facts out.

Two netlink sources (the I/O is in :mod:`stockade.sensors.sockets.watch`):

- the process connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``): a program was executed —
  how a new listener usually begins (a backdoor started, a service restarted);
- sock_diag's destroy groups (``NETLINK_SOCK_DIAG``, ``SKNLGRP_INET*_DESTROY``): a socket was
  destroyed; one without a peer (remote port 0) was a listener or an unconnected UDP socket.

Linux has no netlink event for a socket that starts listening, so these are triggers for a
check of the socket table, never facts about listeners by themselves.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

NETLINK_SOCK_DIAG = 4
NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_EXEC = 0x00000002
SOCK_DIAG_BY_FAMILY = 20
#: SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY, SKNLGRP_INET6_TCP_DESTROY, ..._UDP_...
DESTROY_GROUPS = (1, 2, 3, 4)
NLMSG_DONE = 3

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=I")  # what (then cpu, timestamp and the event's own data)
_DIAG_HEAD = struct.Struct("=BBBB")  # family, state, timer, retrans
_PORTS = struct.Struct(">HH")  # the socket id starts with sport, dport in network order


def message(kind: int, body: bytes, *, flags: int = 0, seq: int = 0, pid: int = 0) -> bytes:
    """One netlink message: its header, then ``body``."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, pid) + body


def listen_request(pid: int) -> bytes:
    """The message asking the process connector to send this socket its events."""
    op = _PROC_EVENT.pack(PROC_CN_MCAST_LISTEN)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
    return message(NLMSG_DONE, cn, pid=pid)


def messages(data: bytes, *, strict: bool = False) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink message in ``data``. A truncated message or stray bytes
    at the end are ignored — or, with ``strict``, a ValueError."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            if strict:
                raise ValueError(
                    f"netlink message of {length} bytes at offset {offset} is cut short"
                )
            return
        yield kind, data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    if strict and offset < len(data):
        raise ValueError(f"{len(data) - offset} stray bytes after the last netlink message")


def count_execs(data: bytes) -> int:
    """How many program executions a datagram from the process connector reports."""
    n = 0
    for _, payload in messages(data):
        if len(payload) < _CN_MSG.size + _PROC_EVENT.size:
            continue
        idx, val, _, _, size, _ = _CN_MSG.unpack_from(payload)
        if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) or size < _PROC_EVENT.size:
            continue
        (what,) = _PROC_EVENT.unpack_from(payload, _CN_MSG.size)
        n += what == PROC_EVENT_EXEC
    return n


def unpeered_ports(data: bytes) -> list[int]:
    """Local ports of the destroyed sockets without a peer (remote port 0) that a sock_diag
    destroy datagram reports: listeners and unconnected UDP sockets."""
    out = []
    for kind, payload in messages(data):
        if kind != SOCK_DIAG_BY_FAMILY or len(payload) < _DIAG_HEAD.size + _PORTS.size:
            continue
        sport, dport = _PORTS.unpack_from(payload, _DIAG_HEAD.size)
        if dport == 0:
            out.append(sport)
    return out
