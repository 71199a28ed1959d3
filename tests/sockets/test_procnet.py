"""The /proc/net socket-table parser: real lines, every state, malformed input, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.errors import StockadeError
from stockade.sensors.sockets.procnet import parse_table

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    "   uid  timeout inode\n"
)
TCP4 = HEADER + (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000"
    "     0        0 12345 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0F02000A:0016 6401A8C0:D431 01 00000010:00000000 02:000A7B0A 00000000"
    "  1000        0 23456 4 0000000000000000 20 4 30 10 -1\n"
)
TCP6 = HEADER + (
    "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0000000000000000FFFF00000100007F:01BB 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0\n"
)


def test_ipv4_lines() -> None:
    a, b = parse_table(TCP4, "tcp", 4)
    assert (a.local_address, a.local_port, a.state, a.recv_q, a.inode) == (
        "127.0.0.1",
        8080,
        "LISTEN",
        3,
        12345,
    )
    assert a.listening
    assert (b.local_address, b.local_port) == ("10.0.2.15", 22)
    assert (b.remote_address, b.remote_port) == ("192.168.1.100", 54321)
    assert (b.state, b.send_q, b.uid) == ("ESTAB", 16, 1000)
    assert not b.listening


def test_ipv6_lines() -> None:
    a, b = parse_table(TCP6, "tcp", 6)
    assert (a.local_address, a.local_port) == ("::1", 80)
    assert (b.local_address, b.local_port) == ("::ffff:127.0.0.1", 443)


def test_udp_states() -> None:
    text = HEADER + (
        "  0: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000"
        "     0        0 99 2 0000000000000000 0\n"
        "  1: 0100007F:A000 0100007F:0035 01 00000000:00000000 00:00000000 00000000"
        "     0        0 98 2 0000000000000000 0\n"
    )
    a, b = parse_table(text, "udp", 4)
    assert (a.state, a.listening, a.local_port) == ("UNCONN", True, 68)
    assert (b.state, b.listening) == ("ESTAB", False)


@pytest.mark.parametrize(
    "line",
    [
        "0: 0100007F:1F90 00000000:0000 0A",  # too few fields
        "0: 0100007F1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",  # no ':' in the endpoint
        "0: 01007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",  # short address
        "0: 0100007F:XYZ 00000000:0000 0A 0:0 0:0 0 0 0 1",  # bad port
        "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 root 0 1",  # bad uid
    ],
)
def test_malformed_lines_name_the_line(line: str) -> None:
    with pytest.raises(StockadeError, match=r"^/proc/net/tcp:2: cannot read socket line"):
        parse_table(HEADER + line + "\n", "tcp", 4, source="/proc/net/tcp")


@given(st.text(max_size=300), st.sampled_from([4, 6]), st.sampled_from(["tcp", "udp"]))
def test_fuzz_never_crashes(text: str, family: int, proto: str) -> None:
    try:
        for s in parse_table(text, proto, family):
            assert 0 <= s.local_port <= 0xFFFF and 0 <= s.remote_port <= 0xFFFF
            assert s.proto == proto and s.family == family
    except StockadeError as e:
        assert "cannot read socket line" in str(e)
