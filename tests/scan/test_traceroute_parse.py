"""Traceroute's pure parts without a network: the error queue's ancillary data (well-formed,
malformed, fuzzed), what each ICMP error means, the printed hop lines, and the schedule of probes (echo
packets are tested with :mod:`stockade.sensors.scan.icmp`)."""

from __future__ import annotations

import ipaddress
import math
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.cli.traceroute_cmd import format_hop, packet_size
from stockade.sensors.scan.errqueue import (
    IP_RECVERR,
    IPV6_RECVERR,
    ORIGIN_ICMP,
    ORIGIN_ICMP6,
    ORIGIN_LOCAL,
    SO_TIMESTAMPNS,
    SOL_IPV6,
    ExtendedError,
    Verdict,
    classify,
    parse_ancillary,
    parse_extended_error,
    parse_sockaddr,
    parse_timestamp,
)
from stockade.sensors.scan.report import Hop
from stockade.sensors.scan.traceroute import TraceOptions, _Answer, _Run


def sockaddr_in(address: str, port: int = 0) -> bytes:
    return (
        struct.pack("=H", socket.AF_INET)
        + struct.pack("!H", port)
        + (ipaddress.IPv4Address(address).packed + bytes(8))
    )


def sockaddr_in6(address: str, port: int = 0) -> bytes:
    head = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
    return head + ipaddress.IPv6Address(address).packed + struct.pack("=I", 0)


def ext_err(err: int, origin: int, typ: int, code: int, info: int = 0) -> bytes:
    return struct.pack("=IBBBBII", err, origin, typ, code, 0, info, 0)


def timespec(sec: int, nsec: int) -> bytes:
    return struct.pack("@ll", sec, nsec)


def test_time_exceeded_from_a_router_v4_and_v6() -> None:
    v4 = parse_extended_error(ext_err(113, ORIGIN_ICMP, 11, 0) + sockaddr_in("10.0.1.1"))
    assert v4 == ExtendedError(113, ORIGIN_ICMP, 11, 0, 0, "10.0.1.1")
    v6 = parse_extended_error(ext_err(113, ORIGIN_ICMP6, 3, 0) + sockaddr_in6("fd00:1::1"))
    assert v6 == ExtendedError(113, ORIGIN_ICMP6, 3, 0, 0, "fd00:1::1")
    assert classify(v4) == classify(v6) == Verdict("", final=False)


def test_ancillary_gives_the_error_and_the_arrival_time() -> None:
    anc = [
        (socket.SOL_SOCKET, SO_TIMESTAMPNS, timespec(1_700_000_000, 250_000_000)),
        (socket.SOL_IP, IP_RECVERR, ext_err(111, ORIGIN_ICMP, 3, 3) + sockaddr_in("10.0.3.2")),
    ]
    err, stamp = parse_ancillary(anc)
    assert err is not None and err.offender == "10.0.3.2" and (err.type, err.code) == (3, 3)
    assert stamp == 1_700_000_000.25
    six = [(SOL_IPV6, IPV6_RECVERR, ext_err(111, ORIGIN_ICMP6, 1, 4) + sockaddr_in6("fd::2"))]
    err6, none = parse_ancillary(six)
    assert err6 is not None and err6.offender == "fd::2" and none is None
    assert parse_ancillary([]) == (None, None)


def test_local_errors_have_no_offender_and_say_nothing_about_the_path() -> None:
    local = parse_extended_error(ext_err(90, ORIGIN_LOCAL, 0, 0, 1400) + bytes(16))
    assert local.offender is None and local.info == 1400
    assert classify(local) is None
    assert parse_extended_error(ext_err(90, ORIGIN_LOCAL, 0, 0)).offender is None  # no sockaddr


@pytest.mark.parametrize(
    ("origin", "typ", "code", "info", "verdict"),
    [
        (ORIGIN_ICMP, 3, 3, 0, Verdict("", final=True)),  # port unreachable: the destination
        (ORIGIN_ICMP, 3, 0, 0, Verdict("!N", final=True)),
        (ORIGIN_ICMP, 3, 1, 0, Verdict("!H", final=True)),
        (ORIGIN_ICMP, 3, 2, 0, Verdict("!P", final=True)),
        (ORIGIN_ICMP, 3, 4, 1280, Verdict("!F-1280", final=True)),
        (ORIGIN_ICMP, 3, 13, 0, Verdict("!X", final=True)),
        (ORIGIN_ICMP, 3, 14, 0, Verdict("!V", final=True)),
        (ORIGIN_ICMP, 3, 15, 0, Verdict("!C", final=True)),
        (ORIGIN_ICMP, 3, 99, 0, Verdict("!<99>", final=True)),
        (ORIGIN_ICMP, 11, 1, 0, Verdict("", final=False)),  # reassembly time exceeded
        (ORIGIN_ICMP6, 1, 4, 0, Verdict("", final=True)),
        (ORIGIN_ICMP6, 1, 0, 0, Verdict("!N", final=True)),
        (ORIGIN_ICMP6, 1, 1, 0, Verdict("!X", final=True)),
        (ORIGIN_ICMP6, 1, 3, 0, Verdict("!H", final=True)),
        (ORIGIN_ICMP6, 1, 5, 0, Verdict("!<5>", final=True)),
        (ORIGIN_ICMP6, 2, 0, 1400, Verdict("!F-1400", final=True)),  # packet too big
        (ORIGIN_ICMP, 5, 0, 0, None),  # a redirect
        (ORIGIN_ICMP, 12, 0, 0, None),  # a parameter problem
        (ORIGIN_ICMP6, 4, 0, 0, None),
        (0, 11, 0, 0, None),  # no origin
    ],
)
def test_what_each_icmp_error_means(
    origin: int, typ: int, code: int, info: int, verdict: Verdict | None
) -> None:
    assert classify(ExtendedError(113, origin, typ, code, info, "10.0.0.1")) == verdict


@pytest.mark.parametrize(
    "data",
    [
        b"",
        ext_err(1, 2, 3, 4)[:15],  # short sock_extended_err
        ext_err(1, 2, 3, 4) + b"\x02",  # a sockaddr cut inside its family
        ext_err(1, 2, 3, 4) + sockaddr_in("10.0.0.1")[:7],
        ext_err(1, 2, 3, 4) + sockaddr_in6("fd::1")[:23],
        ext_err(1, 2, 3, 4) + struct.pack("=H", 99) + bytes(14),  # unknown family
    ],
)
def test_malformed_extended_errors_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"sock_extended_err|sockaddr"):
        parse_extended_error(data)


def test_malformed_timestamps_raise_value_error_and_count_as_missing() -> None:
    with pytest.raises(ValueError, match="timespec"):
        parse_timestamp(timespec(1, 0)[:-1])
    with pytest.raises(ValueError, match="nanoseconds"):
        parse_timestamp(timespec(1, 1_000_000_000))
    anc = [(socket.SOL_SOCKET, SO_TIMESTAMPNS, b"\x01"), (socket.SOL_IP, IP_RECVERR, b"\x00")]
    assert parse_ancillary(anc) == (None, None)


@given(st.binary(max_size=80))
def test_extended_error_parsing_never_fails_otherwise(data: bytes) -> None:
    try:
        err = parse_extended_error(data)
    except ValueError:
        return
    assert len(data) >= 16
    assert err.offender is None or ipaddress.ip_address(err.offender).version in (4, 6)
    verdict = classify(err)  # total on anything parsed
    assert verdict is None or err.origin in (ORIGIN_ICMP, ORIGIN_ICMP6)


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.binary(max_size=64))),
)
def test_ancillary_parsing_never_fails(anc: list[tuple[int, int, bytes]]) -> None:
    err, stamp = parse_ancillary(anc)
    assert err is None or isinstance(err, ExtendedError)
    assert stamp is None or math.isfinite(stamp)


@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([ORIGIN_ICMP, ORIGIN_ICMP6]),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.ip_addresses(),
    st.integers(0, 65535),
)
def test_extended_errors_round_trip(
    err: int,
    origin: int,
    typ: int,
    code: int,
    info: int,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
) -> None:
    sa = sockaddr_in(str(address), port) if address.version == 4 else sockaddr_in6(str(address))
    got = parse_extended_error(ext_err(err, origin, typ, code, info) + sa)
    assert got == ExtendedError(err, origin, typ, code, info, str(address))
    assert parse_sockaddr(sa) == str(address)


def test_hop_lines_are_printed_as_traceroute_prints_them() -> None:
    hop = Hop(1, "10.0.1.1", [0.00005, 0.00003, 0.000028], ["10.0.1.1"] * 3, ["", "", ""])
    assert format_hop(hop) == " 1  10.0.1.1  0.050 ms  0.030 ms  0.028 ms"
    assert format_hop(Hop(12, None, [None, None, None], [None] * 3, [""] * 3)) == "12  * * *"
    split = Hop(3, "10.0.2.1", [None, 0.001, 0.0021], [None, "10.0.2.1", "10.0.4.1"], [""] * 3)
    assert format_hop(split) == " 3  * 10.0.2.1  1.000 ms 10.0.4.1  2.100 ms"
    marked = Hop(4, "10.0.3.1", [0.0001, None], ["10.0.3.1", None], ["!X", ""])
    assert format_hop(marked) == " 4  10.0.3.1  0.100 ms !X *"
    # a hop read back from JSON without per-probe details
    assert format_hop(Hop(2, "fd::1", [0.0002])) == " 2  fd::1  0.200 ms"
    assert packet_size("10.0.0.1") == 60 and packet_size("fd::1") == 80


def test_hop_json_carries_responders_and_marks_only_when_they_add_something() -> None:
    plain = Hop(1, "10.0.1.1", [0.001, None], ["10.0.1.1", None], ["", ""])
    assert plain.to_json() == {"ttl": 1, "address": "10.0.1.1", "rtts": [0.001, None]}
    split = Hop(2, "10.0.2.1", [0.001, 0.002], ["10.0.2.1", "10.0.4.1"], ["", "!H"])
    d = split.to_json()
    assert d["responders"] == ["10.0.2.1", "10.0.4.1"] and d["marks"] == ["", "!H"]
    assert Hop.from_json(d) == split
    assert Hop.from_json(plain.to_json()) == Hop(1, "10.0.1.1", [0.001, None])


def test_schedule_keeps_probes_in_flight_stops_at_the_end_and_gives_up_on_silence() -> None:
    """The trace's bookkeeping without sockets: sending, answers, give-ups, hops in order."""
    shown: list[Hop] = []
    run = _Run(TraceOptions(inflight=16, wait=5.0), shown.append)
    sent = []
    while run.can_send():
        probe = run.next_probe()
        probe.sent, probe.sent_wall = 100.0, 1000.0
        sent.append(probe)
    assert [p.ttl for p in sent] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6]
    assert [p.key for p in sent[:3]] == [33434, 33435, 33436]  # one UDP port per probe
    hop1 = Verdict("", final=False)
    for p in sent[:3]:  # hop 1 answers: its slots are free for more probes
        run.answer(_Answer(p.key, "10.0.1.1", 1000.001, hop1))
    assert run.can_send()
    run.complete_hops()
    assert [(h.ttl, h.address) for h in shown] == [(1, "10.0.1.1")]
    assert shown[0].rtts == [0.001] * 3
    # hop 3 is the destination; hop 2 stays silent
    for p in sent[6:9]:
        run.answer(_Answer(p.key, "10.0.3.1", 1000.002, Verdict("", final=True)))
    assert run.last == 3 and not run.can_send()  # nothing goes beyond the destination
    run.expire(100.1)  # too soon for hop 2, even with farther hops answered
    run.complete_hops()
    assert len(shown) == 1 and not run.finished
    run.expire(100.0 + 3 * run.timing.timeout)  # three adaptive time-outs, not the 5 s wait
    run.complete_hops()
    assert run.finished and not run.flying
    assert [(h.ttl, h.address, h.rtts) for h in shown[1:]] == [
        (2, None, [None, None, None]),
        (3, "10.0.3.1", [0.002] * 3),
    ]
    # a late answer to a probe already given up changes nothing
    run.answer(_Answer(sent[3].key, "10.0.2.1", 1000.5, hop1))
    assert run.hops[1].address is None


def test_silent_hops_wait_the_whole_wait_while_nothing_farther_answered() -> None:
    run = _Run(TraceOptions(icmp=True, port=65535, queries=1, max_ttl=2, wait=2.0), None)
    first, second = run.next_probe(), run.next_probe()
    assert (first.key, second.key) == (65535, 0)  # ICMP sequence numbers wrap
    first.sent = second.sent = 10.0
    run.expire(11.9)
    assert len(run.flying) == 2
    run.expire(12.0)
    run.complete_hops()
    assert run.finished and [h.address for h in run.hops] == [None, None]
