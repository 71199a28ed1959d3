"""The shared IP helpers without a network: the Internet checksum, the IPv4 pseudo-header and
taking the IPv4 header off raw-socket packets (well-formed, malformed, fuzzed)."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan.inet import checksum, fold, ipv4_payload, ones_sum, pseudo_header4


def test_checksum_of_the_rfc_1071_example() -> None:
    data = bytes.fromhex("0001f203f4f5f6f7")  # RFC 1071 §3: the sum is ddf2
    assert ones_sum(data) == 0xDDF2
    assert checksum(data) == 0x220D
    assert checksum(data + struct.pack("!H", 0x220D)) == 0  # a right checksum sums to zero
    assert checksum(b"\x01") == checksum(b"\x01\x00")  # odd lengths are padded with a zero
    assert checksum(b"") == 0xFFFF


@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2]), st.binary(max_size=64))
def test_sums_of_parts_add_up(head: bytes, tail: bytes) -> None:
    """What the SYN scanner relies on: a sum computed once, plus the part that changes."""
    whole = ones_sum(head + tail)
    assert fold(ones_sum(head) + ones_sum(tail)) == whole
    assert 0 <= whole <= 0xFFFF
    stamped = head + tail + (b"\0" if len(tail) % 2 else b"")
    assert checksum(stamped + struct.pack("!H", checksum(stamped))) == 0


def test_pseudo_header() -> None:
    got = pseudo_header4("10.0.0.1", "10.0.0.2", socket.IPPROTO_TCP, 24)
    assert got == bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 24])
    with pytest.raises(ValueError):
        pseudo_header4("fd00::1", "10.0.0.2", socket.IPPROTO_TCP, 24)


def ip4(proto: int, payload: bytes, first: int = 0x45) -> bytes:
    head = struct.pack("!BBHHHBBH", first, 0, 20 + len(payload), 0, 0, 64, proto, 0)
    return head + bytes([10, 0, 0, 2, 10, 0, 0, 1]) + payload


def test_ipv4_payload() -> None:
    tcp = bytes(range(20))
    assert ipv4_payload(ip4(socket.IPPROTO_TCP, tcp), socket.IPPROTO_TCP) == (b"\n\0\0\2", tcp)
    options = ip4(socket.IPPROTO_TCP, bytes(4) + tcp, first=0x46)  # a 24-byte header
    assert ipv4_payload(options, socket.IPPROTO_TCP) == (b"\n\0\0\2", tcp)
    # another protocol, an IHL below 20 bytes, another version, too short: None
    assert ipv4_payload(ip4(socket.IPPROTO_UDP, tcp), socket.IPPROTO_TCP) is None
    assert ipv4_payload(ip4(socket.IPPROTO_TCP, tcp, first=0x44), socket.IPPROTO_TCP) is None
    assert ipv4_payload(ip4(socket.IPPROTO_TCP, tcp, first=0x65), socket.IPPROTO_TCP) is None
    assert ipv4_payload(ip4(socket.IPPROTO_TCP, b"")[:19], socket.IPPROTO_TCP) is None


@given(st.binary(max_size=80), st.integers(0, 255))
def test_fuzz_ipv4_payload(data: bytes, proto: int) -> None:
    got = ipv4_payload(data, proto)
    if got is not None:
        assert len(got[0]) == 4 and data.endswith(got[1]) and data[9] == proto
