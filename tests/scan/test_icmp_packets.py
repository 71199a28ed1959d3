"""ICMP/ICMPv6 echo building and the parsing of replies and errors, without a network:
fields, checksums, quoted probes, malformed input and fuzzing of the parsers' contract."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan import icmp, tcp_probe
from stockade.sensors.scan.discovery_probes import Answer, icmp_error_answer, tcp_answer
from stockade.sensors.scan.errqueue import SO_TIMESTAMPNS
from stockade.sensors.scan.inet import checksum, pseudo_header4

US, THEM, ROUTER = "10.0.0.1", "10.0.0.2", "10.0.0.254"


def ip4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    head = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 7, 0, ttl, proto, 0)
    addrs = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    return head + addrs + payload


def ip6_header(src: str, dst: str, proto: int, length: int) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, length, proto, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
    )


def as_reply(request: bytes) -> bytes:
    """What a host sends back for an IPv4 echo request: type 0, checksum redone."""
    body = b"\x00\x00\x00\x00" + request[4:]
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def error4(kind: int, code: int, quoted: bytes) -> bytes:
    body = struct.pack("!BBHI", kind, code, 0, 0) + quoted
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=200))
def test_echo_request_round_trip(ident: int, seq: int, payload: bytes) -> None:
    req = icmp.echo_request(ident, seq, payload)
    assert checksum(req) == 0  # a right checksum sums to zero
    reply = icmp.parse_ipv4(ip4(THEM, US, socket.IPPROTO_ICMP, as_reply(req), ttl=63))
    assert isinstance(reply, icmp.Echo)
    assert reply.reply and (reply.ident, reply.seq, reply.payload) == (ident, seq, payload)
    assert (reply.source, reply.ttl, reply.size) == (THEM, 63, 8 + len(payload))
    # our own request, as a raw socket on loopback also sees it, is not a reply
    mine = icmp.parse_ipv4(ip4(US, THEM, socket.IPPROTO_ICMP, req))
    assert isinstance(mine, icmp.Echo) and not mine.reply


def test_echo_request_v6_leaves_the_checksum_to_the_kernel() -> None:
    req = icmp.echo_request(0x1234, 7, b"abc", v6=True)
    assert req == b"\x80\x00\x00\x00\x12\x34\x00\x07abc"
    reply = icmp.parse_icmp(b"\x81" + req[1:], source="fd00::2", ttl=62, v6=True)
    assert reply == icmp.Echo(True, "fd00::2", 62, 0x1234, 7, b"abc", 11)
    with pytest.raises(ValueError):
        icmp.echo_request(0x10000, 1)


def test_port_unreachable_quotes_our_udp_probe() -> None:
    udp = struct.pack("!HHHH", 40000, 40125, 8, 0)
    quoted = ip4(US, THEM, socket.IPPROTO_UDP, udp)
    err = icmp.parse_ipv4(ip4(THEM, US, socket.IPPROTO_ICMP, error4(3, 3, quoted)))
    assert isinstance(err, icmp.IcmpError)
    assert (err.source, err.reason, err.orig_src, err.orig_dst) == (THEM, "port-unreach", US, THEM)
    assert (err.orig_proto, err.orig_sport, err.orig_dport) == (socket.IPPROTO_UDP, 40000, 40125)


def test_host_unreachable_from_a_router_quotes_our_echo() -> None:
    quoted = ip4(US, THEM, socket.IPPROTO_ICMP, icmp.echo_request(77, 3, b"x" * 8))
    err = icmp.parse_ipv4(ip4(ROUTER, US, socket.IPPROTO_ICMP, error4(3, 1, quoted), ttl=64))
    assert isinstance(err, icmp.IcmpError)
    assert (err.source, err.reason, err.orig_dst) == (ROUTER, "host-unreach", THEM)
    assert (err.orig_proto, err.orig_sport, err.orig_dport) == (socket.IPPROTO_ICMP, 77, 3)
    # RFC 792 minimum: the quoted header and 8 bytes are enough
    short = ip4(US, THEM, socket.IPPROTO_ICMP, icmp.echo_request(77, 3))[:28]
    err = icmp.parse_ipv4(ip4(ROUTER, US, socket.IPPROTO_ICMP, error4(11, 0, short)))
    assert isinstance(err, icmp.IcmpError) and err.reason == "time-exceeded"
    assert (err.orig_sport, err.orig_dport) == (77, 3)


def test_echo_in_finds_echoes_with_and_without_the_ip_header() -> None:
    reply = as_reply(icmp.echo_request(7, 9, bytes(32)))
    packet = ip4(THEM, US, socket.IPPROTO_ICMP, reply)
    for got in (icmp.echo_in(packet, v6=False, with_ip=True), icmp.echo_in(reply, v6=False)):
        assert got is not None and got.reply and (got.ident, got.seq) == (7, 9)
    v6 = icmp.echo_in(struct.pack("!BBHHH", icmp.ECHO_REPLY6, 0, 0, 1, 2), v6=True)
    assert v6 is not None and v6.reply and (v6.ident, v6.seq) == (1, 2)
    request = icmp.echo_in(icmp.echo_request(7, 9), v6=False)  # as an ICMP error quotes it
    assert request is not None and not request.reply and request.seq == 9
    # not echoes (an error, a non-zero code, not ICMP), cut short, or a bad header: None
    quoted = ip4(US, THEM, socket.IPPROTO_ICMP, icmp.echo_request(7, 9))
    assert icmp.echo_in(error4(11, 0, quoted), v6=False) is None
    assert icmp.echo_in(struct.pack("!BBHHH", icmp.ECHO_REPLY4, 1, 0, 7, 9), v6=False) is None
    assert icmp.echo_in(reply[:7], v6=False) is None
    assert icmp.echo_in(packet[:9] + b"\x06" + packet[10:], v6=False, with_ip=True) is None
    assert icmp.echo_in(b"\x44" + packet[1:], v6=False, with_ip=True) is None
    assert icmp.echo_in(reply, v6=False, with_ip=True) is None


@given(st.binary(max_size=64), st.booleans(), st.booleans())
def test_fuzz_echo_in_never_raises(data: bytes, v6: bool, with_ip: bool) -> None:
    got = icmp.echo_in(data, v6=v6, with_ip=with_ip)
    assert got is None or (got.size <= len(data) and 0 <= got.seq <= 0xFFFF)


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [(3, 0, "net-unreach"), (3, 2, "proto-unreach"), (3, 13, "admin-prohibited"),
     (3, 4, "unreach"), (12, 0, "param-problem")],
)  # fmt: skip
def test_v4_error_reasons(kind: int, code: int, reason: str) -> None:
    quoted = ip4(US, THEM, socket.IPPROTO_TCP, struct.pack("!HHI", 50000, 443, 1))
    err = icmp.parse_ipv4(ip4(ROUTER, US, socket.IPPROTO_ICMP, error4(kind, code, quoted)))
    assert isinstance(err, icmp.IcmpError) and err.reason == reason
    assert (err.orig_sport, err.orig_dport) == (50000, 443)


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [(1, 4, "port-unreach"), (1, 3, "host-unreach"), (1, 0, "net-unreach"),
     (1, 1, "admin-prohibited"), (3, 0, "time-exceeded"), (4, 1, "proto-unreach")],
)  # fmt: skip
def test_v6_errors_quote_the_ipv6_header(kind: int, code: int, reason: str) -> None:
    udp = struct.pack("!HHHH", 40001, 40125, 8, 0)
    quoted = ip6_header("fd00::1", "fd00::2", socket.IPPROTO_UDP, 8) + udp
    message = struct.pack("!BBHI", kind, code, 0, 0) + quoted
    err = icmp.parse_icmp(message, source="fd00::2", ttl=64, v6=True)
    assert isinstance(err, icmp.IcmpError)
    assert (err.reason, err.orig_src, err.orig_dst) == (reason, "fd00::1", "fd00::2")
    assert (err.orig_sport, err.orig_dport) == (40001, 40125)


def test_messages_of_no_use_are_none() -> None:
    assert icmp.parse_ipv4(ip4(THEM, US, socket.IPPROTO_TCP, b"\0" * 20)) is None
    redirect = error4(5, 1, ip4(US, THEM, socket.IPPROTO_UDP, b"\0" * 8))
    assert icmp.parse_ipv4(ip4(ROUTER, US, socket.IPPROTO_ICMP, redirect)) is None
    neighbour_solicitation = struct.pack("!BBHI", 135, 0, 0, 0) + bytes(16)
    assert icmp.parse_icmp(neighbour_solicitation, source="fe80::1", ttl=255, v6=True) is None


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x45" + bytes(10),  # shorter than an IPv4 header
        b"\x65" + bytes(19),  # version 6 in an IPv4 socket
        b"\x44" + bytes(19),  # header length 16
        b"\x4f" + bytes(27),  # header length 60 in a 28-byte packet
        ip4(THEM, US, socket.IPPROTO_ICMP, b"\x00\x00"),  # ICMP header cut short
        ip4(THEM, US, socket.IPPROTO_ICMP, b"\x00\x00\x12\x34\x00\x01\x00\x01"),  # bad sum
        ip4(ROUTER, US, socket.IPPROTO_ICMP, error4(3, 3, b"\x45" + bytes(10))),  # quote cut
        ip4(ROUTER, US, socket.IPPROTO_ICMP, error4(3, 3, b"\x60" + bytes(30))),  # not v4 quoted
    ],
)
def test_malformed_v4_raises_value_error(packet: bytes) -> None:
    with pytest.raises(ValueError):
        icmp.parse_ipv4(packet)


def test_malformed_v6_raises_value_error() -> None:
    with pytest.raises(ValueError):
        icmp.parse_icmp(b"\x81\x00\x00", source="fd00::2", ttl=1, v6=True)
    with pytest.raises(ValueError):  # an error quoting less than an IPv6 header
        icmp.parse_icmp(b"\x01\x04" + bytes(6) + b"\x60" + bytes(20), source="", ttl=1, v6=True)


@given(st.binary(max_size=120))
def test_fuzz_v4_parser_contract(data: bytes) -> None:
    try:
        got = icmp.parse_ipv4(data)
    except ValueError:
        return
    assert got is None or isinstance(got, icmp.Echo | icmp.IcmpError)


QUOTED = st.one_of(
    st.binary(max_size=100),
    st.builds(lambda p, b: ip4(US, THEM, p, b), st.integers(0, 255), st.binary(max_size=40)),
)


@given(st.sampled_from([0, 3, 8, 11, 12]), st.integers(0, 15), QUOTED)
def test_fuzz_v4_parser_deeper(kind: int, code: int, rest: bytes) -> None:
    """Well-formed IPv4 and ICMP headers around random contents: the quoted-packet parsing."""
    body = struct.pack("!BBHI", kind, code, 0, 0) + rest
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    try:
        got = icmp.parse_ipv4(ip4(ROUTER, US, socket.IPPROTO_ICMP, body))
    except ValueError:
        assert kind not in (0, 8)  # echo messages have nothing more to check
        return
    if kind in (0, 8):
        assert isinstance(got, icmp.Echo) or (got is None and code != 0)
    else:
        assert isinstance(got, icmp.IcmpError) and got.source == ROUTER


@given(st.binary(max_size=120), st.booleans(), st.one_of(st.none(), st.integers(0, 255)))
def test_fuzz_bare_parser_contract(data: bytes, v6: bool, ttl: int | None) -> None:
    try:
        got = icmp.parse_icmp(data, source="x", ttl=ttl, v6=v6)
    except ValueError:
        return
    if isinstance(got, icmp.Echo):
        assert got.size == len(data) and got.ttl == ttl
    elif isinstance(got, icmp.IcmpError):
        assert got.orig_sport is None or 0 <= got.orig_sport <= 0xFFFF
    else:
        assert got is None


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.binary(max_size=8)), max_size=4)
)
def test_fuzz_ancillary_ttl(items: list[tuple[int, int, bytes]]) -> None:
    ttl = icmp.ttl_from_ancillary(items)
    assert ttl is None or 0 <= ttl <= 255


def test_ttl_and_hop_limit_from_ancillary_data() -> None:
    hop = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, (63).to_bytes(4, "little"))
    ttl = (socket.IPPROTO_IP, socket.IP_TTL, (61).to_bytes(4, "little"))
    other = (socket.SOL_SOCKET, 29, b"\0" * 16)
    if sys.byteorder == "big":
        hop = (hop[0], hop[1], (63).to_bytes(4, "big"))
        ttl = (ttl[0], ttl[1], (61).to_bytes(4, "big"))
    assert icmp.ttl_from_ancillary([other, hop]) == 63
    assert icmp.ttl_from_ancillary([ttl]) == 61
    assert icmp.ttl_from_ancillary([other]) is None


def test_type_filters() -> None:
    words = struct.unpack("=8I", icmp.icmp6_filter([1, 129]))
    assert words[0] == 0xFFFFFFFF & ~(1 << 1)
    assert words[4] == 0xFFFFFFFF & ~(1 << 1)  # 129 = 4 * 32 + 1
    assert all(w == 0xFFFFFFFF for i, w in enumerate(words) if i not in (0, 4))
    assert struct.unpack("=I", icmp.icmp4_filter([0, 3]))[0] == 0xFFFFFFFF & ~0b1001


@given(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF), st.integers(0, 2**32 - 1))
def test_tcp_probes_have_right_checksums(sport: int, dport: int, number: int) -> None:
    for flags in (tcp_probe.SYN, tcp_probe.ACK):
        seg = tcp_probe.probe(US, THEM, sport, dport, seq=number, ack=number ^ 1, flags=flags)
        assert checksum(pseudo_header4(US, THEM, socket.IPPROTO_TCP, len(seg)) + seg) == 0
        got = tcp_probe.parse(seg, with_ip=False)
        assert got == tcp_probe.Segment("", sport, dport, number, number ^ 1, flags)
    v6 = tcp_probe.probe("fd00::1", "fd00::2", sport, dport, seq=1, ack=0, flags=tcp_probe.SYN)
    assert v6[16:18] == b"\0\0"  # the kernel fills it in (IPV6_CHECKSUM)


def test_tcp_answers_read_from_ipv4_packets() -> None:
    rst = struct.pack("!HHIIBBHHH", 80, 50000, 1234, 0, 5 << 4, tcp_probe.RST, 0, 0, 0)
    got = tcp_probe.parse(ip4(THEM, US, socket.IPPROTO_TCP, rst), with_ip=True)
    assert got == tcp_probe.Segment(THEM, 80, 50000, 1234, 0, tcp_probe.RST)
    assert tcp_probe.parse(ip4(THEM, US, socket.IPPROTO_UDP, rst), with_ip=True) is None
    assert tcp_probe.parse(ip4(THEM, US, socket.IPPROTO_TCP, rst[:12]), with_ip=True) is None


@given(st.binary(max_size=80), st.booleans())
def test_fuzz_tcp_parser(data: bytes, with_ip: bool) -> None:
    got = tcp_probe.parse(data, with_ip=with_ip)
    assert got is None or 0 <= got.sport <= 0xFFFF


def test_icmp_errors_judge_the_host() -> None:
    udp = struct.pack("!HHHH", 40000, 40125, 8, 0)
    quoted = ip4(US, THEM, socket.IPPROTO_UDP, udp)

    def judged(source: str, kind: int, code: int) -> Answer | None:
        err = icmp.parse_ipv4(ip4(source, US, socket.IPPROTO_ICMP, error4(kind, code, quoted)))
        assert isinstance(err, icmp.IcmpError)
        return icmp_error_answer(err)

    # the target itself answers: it is up
    assert judged(THEM, 3, 3) == Answer(THEM, True, "port-unreach")
    assert judged(THEM, 3, 13) == Answer(THEM, True, "admin-prohibited")
    # a router (or our own kernel) says it cannot be reached: down
    assert judged(ROUTER, 3, 1) == Answer(THEM, False, "host-unreach")
    assert judged(ROUTER, 3, 13) == Answer(THEM, False, "admin-prohibited")
    # a TTL running out on the way says nothing about the host
    assert judged(ROUTER, 11, 0) is None


def test_tcp_answers_are_matched_on_secret_numbers() -> None:
    syn_base, ack_base = 0xFFFFFFFE, 1000  # the first wraps around
    synack = tcp_probe.Segment(THEM, 443, 5000, 7, syn_base + 1 + 1 - 2**32, 0x12)
    assert tcp_answer(synack, syn_base, ack_base, 2) == ("syn-ack", 1)
    rst_to_syn = tcp_probe.Segment(THEM, 443, 5000, 0, syn_base + 1 + 2 - 2**32, 0x14)
    assert tcp_answer(rst_to_syn, syn_base, ack_base, 2) == ("reset", 2)
    rst_to_ack = tcp_probe.Segment(THEM, 80, 5000, ack_base, 0, tcp_probe.RST)
    assert tcp_answer(rst_to_ack, syn_base, ack_base, 2) == ("reset", 0)
    # a try we never sent, a bare ACK, or a stranger's numbers are not answers
    assert tcp_answer(rst_to_ack, syn_base, ack_base - 3, 2) is None
    assert tcp_answer(tcp_probe.Segment(THEM, 80, 5000, ack_base, 0, 0x10), 0, ack_base, 2) is None
    assert tcp_answer(tcp_probe.Segment(THEM, 443, 5000, 9, 12345, 0x12), 1, 2, 2) is None


def test_receive_time_stamp_from_ancillary_data() -> None:
    stamp = (socket.SOL_SOCKET, SO_TIMESTAMPNS, struct.pack("@ll", 1700000000, 250_000_000))
    other = (socket.SOL_SOCKET, 29, b"\0" * 16)
    assert icmp.stamp_from_ancillary([other, stamp]) == 1700000000.25
    # a malformed one (errqueue.parse_timestamp's cases) counts as missing
    assert icmp.stamp_from_ancillary([(socket.SOL_SOCKET, SO_TIMESTAMPNS, b"\0")]) is None
    assert icmp.stamp_from_ancillary([other]) is None
