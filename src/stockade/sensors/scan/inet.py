"""What the raw-packet scanners share about IP: the Internet checksum (RFC 1071), the IPv4
pseudo-header that TCP checksums cover, and taking the IPv4 header off what a raw IPv4 socket
delivers. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import struct


def fold(total: int) -> int:
    """``total`` folded to 16 bits with end-around carries (one's-complement addition)."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_sum(data: bytes) -> int:
    """The 16-bit one's-complement sum of ``data`` (padded with a zero byte to even length);
    sums of parts can be added and folded again (:func:`fold`)."""
    if len(data) % 2:
        data += b"\0"
    return fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: 0 when ``data`` carries a right one."""
    return ~ones_sum(data) & 0xFFFF


def pseudo_header4(src: str, dst: str, proto: int, length: int) -> bytes:
    """The IPv4 pseudo-header a TCP or UDP checksum covers (RFC 9293 §3.1)."""
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!BBH", 0, proto, length)
    )


def ipv4_payload(packet: bytes, proto: int) -> tuple[bytes, bytes] | None:
    """(source address, payload) of ``packet``, a whole IPv4 packet as a raw IPv4 socket
    delivers it, when it carries protocol ``proto``; None for anything else, or a header too
    short to be one."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != proto:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20:
        return None
    return packet[12:16], packet[ihl:]
