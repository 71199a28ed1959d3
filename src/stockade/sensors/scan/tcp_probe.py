"""TCP probe segments for host discovery (a SYN, or a bare ACK) and the reading of the
segments that answer them. Pure functions, no I/O.

A SYN to an open port draws a SYN-ACK acknowledging ``seq + 1``; to a closed port a reset
acknowledging ``seq + 1``. A bare ACK with acknowledgement number ``ack`` draws a reset whose
sequence number is ``ack`` (RFC 9293 §3.10.7.1), open port or not. Either shows the host is up.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from stockade.sensors.scan.inet import checksum, ipv4_payload, pseudo_header4

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@dataclass(frozen=True, slots=True)
class Segment:
    """The header fields of a received TCP segment that matter for matching."""

    source: str  # '' when the packet came without an IP header (IPv6 raw sockets)
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int


def probe(src: str, dst: str, sport: int, dport: int, *, seq: int, ack: int, flags: int) -> bytes:
    """A 20-byte TCP header. For IPv4 the checksum is filled in; for IPv6 it is left 0 for the
    kernel (the raw socket must set ``IPV6_CHECKSUM`` to offset 16)."""
    segment = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 1024, 0, 0
    )
    if ":" in dst:
        return segment
    pseudo = pseudo_header4(src, dst, socket.IPPROTO_TCP, len(segment))
    return segment[:16] + struct.pack("!H", checksum(pseudo + segment)) + segment[18:]


def parse(packet: bytes, *, with_ip: bool) -> Segment | None:
    """The TCP header of ``packet`` (a whole IPv4 packet when ``with_ip``, else a bare segment
    as IPv6 raw sockets give it); None for anything else or anything truncated."""
    source = ""
    if with_ip:
        got = ipv4_payload(packet, socket.IPPROTO_TCP)
        if got is None:
            return None
        source, packet = socket.inet_ntoa(got[0]), got[1]
    if len(packet) < 20:
        return None
    sport, dport, seq, ack, _off, flags = struct.unpack("!HHIIBB", packet[:14])
    return Segment(source, sport, dport, seq, ack, flags)
