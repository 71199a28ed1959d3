"""sock_diag dumps: the request, the records, errors, malformed and random datagrams."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.sensors.sockets.inetdiag import (
    NLMSG_ERROR,
    DiagError,
    Dump,
    dump_request,
    parse_dump,
)
from stockade.sensors.sockets.nlevents import NLMSG_DONE, SOCK_DIAG_BY_FAMILY
from stockade.sensors.sockets.table import diag_sockets


def nlmsg(kind: int, payload: bytes) -> bytes:
    pad = b"\0" * (-len(payload) % 4)
    return struct.pack("=IHHII", 16 + len(payload), kind, 2, 1, 0) + payload + pad


def diag(
    family: int, state: int, src: bytes, sport: int, dst: bytes, dport: int, **kw: int
) -> bytes:
    sockid = struct.pack(">HH16s16s", sport, dport, src.ljust(16, b"\0"), dst.ljust(16, b"\0"))
    sockid += struct.pack("=III", 0, 0, 0)
    tail = struct.pack(
        "=IIIII", 0, kw.get("rq", 0), kw.get("wq", 0), kw.get("uid", 0), kw.get("inode", 0)
    )
    attrs = b"\x08\x00\x01\x00\x00\x00\x00\x00"  # an attribute after the record is skipped
    return nlmsg(
        SOCK_DIAG_BY_FAMILY, struct.pack("=BBBB", family, state, 0, 0) + sockid + tail + attrs
    )


def test_the_request_asks_for_every_state() -> None:
    msg = dump_request("udp", 6, seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, flags, seq) == (len(msg), SOCK_DIAG_BY_FAMILY, 0x301, 7)
    assert struct.unpack_from("=BBBxI", msg, 16) == (
        socket.AF_INET6,
        socket.IPPROTO_UDP,
        0,
        0xFFFFFFFF,
    )
    assert len(msg) == 16 + 56


def test_records_become_sockets_and_done_ends_the_dump() -> None:
    v4 = socket.inet_aton("127.0.0.1")
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    data = diag(socket.AF_INET, 10, v4, 8080, b"", 0, rq=0, wq=128, uid=33, inode=99)
    data += diag(socket.AF_INET6, 1, v6, 443, v6, 51000, rq=5, wq=7)
    dump = parse_dump(data, "tcp", Dump([]))
    assert not dump.done
    lst, est = dump.sockets
    assert (lst.local_address, lst.local_port, lst.state, lst.send_q, lst.uid, lst.inode) == (
        "127.0.0.1",
        8080,
        "LISTEN",
        128,
        33,
        99,
    )
    assert lst.remote_address == "0.0.0.0" and lst.listening
    assert (est.family, est.local_address, est.remote_port, est.state, est.recv_q) == (
        6,
        "2001:db8::1",
        51000,
        "ESTAB",
        5,
    )
    parse_dump(nlmsg(NLMSG_DONE, b"\0\0\0\0"), "tcp", dump)
    assert dump.done and len(dump.sockets) == 2


def test_an_error_message_is_the_kernels_errno() -> None:
    with pytest.raises(DiagError) as e:
        parse_dump(nlmsg(NLMSG_ERROR, struct.pack("=i", -2) + b"\0" * 16), "udp", Dump([]))
    assert e.value.errno == 2
    # an acknowledgement (error 0) is no error
    assert parse_dump(nlmsg(NLMSG_ERROR, struct.pack("=i", 0)), "udp", Dump([])).sockets == []


@pytest.mark.parametrize(
    "data",
    [
        diag(socket.AF_INET, 10, b"\x7f\0\0\x01", 1, b"", 0)[:40],  # cut short
        struct.pack("=IHHII", 8, SOCK_DIAG_BY_FAMILY, 0, 0, 0),  # length below the header
        nlmsg(SOCK_DIAG_BY_FAMILY, b"\x02" * 20),  # a record too short
        diag(socket.AF_UNIX, 10, b"", 1, b"", 0),  # not an inet family
        nlmsg(NLMSG_ERROR, b"\xff"),  # an error without its code
        diag(socket.AF_INET, 10, b"\x7f\0\0\x01", 1, b"", 0) + b"\1\2\3",  # stray bytes
    ],
)
def test_malformed_datagrams_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_dump(data, "tcp", Dump([]))


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_random_datagrams_raise_only_their_own_errors(data: bytes) -> None:
    try:
        dump = parse_dump(data, "tcp", Dump([]))
    except (ValueError, DiagError):
        return
    assert all(0 <= s.local_port < 65536 for s in dump.sockets)


def test_the_kernel_answers_with_our_own_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        got = diag_sockets("udp", 4)
        if got is None:
            pytest.skip("this kernel offers no udp_diag")
        mine = [s for s in got if s.local_port == port]
        assert len(mine) == 1 and mine[0].state == "UNCONN" and mine[0].inode > 0
