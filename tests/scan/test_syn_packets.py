"""SYN packets and the parsing of replies, without a network: checksums, matching, fuzzing."""

from __future__ import annotations

import ipaddress
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan.inet import checksum, pseudo_header4
from stockade.sensors.scan.syn import SynBuilder, parse_reply

SRC, DST = "10.0.0.1", "10.0.0.2"


def ip4(src: str, payload: bytes) -> bytes:
    head = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 0, 0, 64, 6, 0)
    return head + ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(DST).packed + payload


def reply(sport: int, dport: int, ack: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 99, ack, 5 << 4, flags, 0, 0, 0)


@given(st.integers(0, 65535), st.integers(1024, 65535), st.integers(0, 2**32 - 1))
def test_every_syn_has_a_right_checksum(dport: int, sport: int, seq: int) -> None:
    seg = SynBuilder(SRC, DST, sport, seq).syn(dport)
    assert len(seg) == 24
    assert struct.unpack("!HHI", seg[:8]) == (sport, dport, seq)
    assert seg[13] == 0x02  # SYN only
    assert checksum(pseudo_header4(SRC, DST, socket.IPPROTO_TCP, len(seg)) + seg) == 0


def test_replies_are_matched_on_port_and_acknowledgement() -> None:
    seq = 1000
    synack = ip4("10.0.0.2", reply(443, 40000, seq + 1, 0x12))
    rst = ip4("10.0.0.2", reply(81, 40000, seq + 1, 0x14))
    assert parse_reply(synack, with_ip=True, sport=40000, seq=seq) == (
        ipaddress.IPv4Address("10.0.0.2").packed,
        443,
        "open",
    )
    assert parse_reply(rst, with_ip=True, sport=40000, seq=seq)[1:] == (81, "closed")  # type: ignore[index]
    # a wrong acknowledgement (forged or stale) or another port of ours is not an answer
    assert (
        parse_reply(ip4("10.0.0.2", reply(443, 40000, 5, 0x12)), with_ip=True, sport=40000, seq=seq)
        is None
    )
    assert (
        parse_reply(
            ip4("10.0.0.2", reply(443, 40001, seq + 1, 0x12)), with_ip=True, sport=40000, seq=seq
        )
        is None
    )
    # IPv6 raw sockets give the segment alone
    assert parse_reply(reply(22, 40000, seq + 1, 0x12), with_ip=False, sport=40000, seq=seq) == (
        b"",
        22,
        "open",
    )
    # a bare ACK is neither
    assert parse_reply(reply(22, 40000, seq + 1, 0x10), with_ip=False, sport=40000, seq=seq) is None


@given(st.binary(max_size=80), st.booleans())
def test_fuzz_replies(data: bytes, with_ip: bool) -> None:
    got = parse_reply(data, with_ip=with_ip, sport=40000, seq=7)
    if got is not None:
        assert got[2] in ("open", "closed") and 0 <= got[1] <= 65535
