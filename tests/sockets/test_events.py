"""The netlink triggers of the listener check: the parsers, the real kernel sockets, the daemon."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.parts.sockets.daemon import LATE, SOON, Due
from stockade.sensors.sockets.nlevents import (
    CN_IDX_PROC,
    CN_VAL_PROC,
    PROC_EVENT_EXEC,
    SOCK_DIAG_BY_FAMILY,
    count_execs,
    listen_request,
    unpeered_ports,
)
from stockade.sensors.sockets.watch import SocketEvents
from tests.conftest import Instance, need_root
from tests.daemonproc import Daemon
from tests.netns import Namespaces, unavailable
from tests.sockets.test_inetdiag import nlmsg


def proc_event(what: int, idx: int = CN_IDX_PROC) -> bytes:
    event = struct.pack("=IIQ", what, 0, 0) + b"\0" * 16
    return nlmsg(3, struct.pack("=IIIIHH", idx, CN_VAL_PROC, 0, 0, len(event), 0) + event)


def destroyed(sport: int, dport: int) -> bytes:
    return nlmsg(
        SOCK_DIAG_BY_FAMILY,
        struct.pack("=BBBB", 2, 7, 0, 0) + struct.pack(">HH", sport, dport) + b"\0" * 64,
    )


def test_the_listen_request_is_one_connector_message() -> None:
    msg = listen_request(1234)
    length, kind, _, _, pid = struct.unpack_from("=IHHII", msg)
    assert (length, kind, pid) == (len(msg), 3, 1234)
    assert struct.unpack_from("=II", msg, 16) == (CN_IDX_PROC, CN_VAL_PROC)
    assert struct.unpack_from("=I", msg, len(msg) - 4) == (1,)


def test_executions_are_counted_and_other_process_events_are_not() -> None:
    fork, exit_ = 0x1, 0x80000000
    data = (
        proc_event(fork)
        + proc_event(PROC_EVENT_EXEC)
        + proc_event(exit_)
        + proc_event(PROC_EVENT_EXEC)
    )
    assert count_execs(data) == 2
    assert count_execs(proc_event(PROC_EVENT_EXEC, idx=7)) == 0  # another connector
    assert count_execs(proc_event(PROC_EVENT_EXEC)[:-30]) == 0  # truncated


def test_only_sockets_without_a_peer_are_listeners() -> None:
    data = destroyed(8080, 0) + destroyed(8080, 51000) + destroyed(5353, 0)
    assert unpeered_ports(data) == [8080, 5353]
    assert unpeered_ports(nlmsg(2, b"\0" * 40)) == []  # an error message, not a socket


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_datagrams_never_raise(data: bytes) -> None:
    assert count_execs(data) >= 0
    assert all(0 <= p < 65536 for p in unpeered_ports(data))


def test_checks_asked_by_events_come_soon_then_late_and_keep_their_gap() -> None:
    due = Due(schedule=60, gap=1, now=100)
    assert due.next() == 160
    due.event(100.5)  # half a second after the last check: the gap holds it back
    assert due.next() == 101
    due.checked(101)
    assert due.next() == 100.5 + LATE  # the late look for a program slow to listen
    due.checked(100.5 + LATE)
    assert due.next() == 160.5 + LATE
    due.event(140)
    due.event(140.1)  # a second event does not delay the soon check
    assert due.next() == 140 + SOON
    due.checked(140 + SOON)
    assert due.next() == 140.1 + LATE


def drain(events: SocketEvents) -> None:
    while events.wait(0.3):
        pass


def test_real_execution_events() -> None:
    need_root()
    events = SocketEvents()
    try:
        if any(x.startswith("exec") for x in events.unavailable):
            pytest.skip(f"not available here: {events.unavailable}")
        drain(events)
        subprocess.run(["true"], check=True)
        assert events.wait(5)
    finally:
        events.close()


DESTROYS = """
import socket
from stockade.sensors.sockets.watch import SocketEvents
from tests.sockets.test_inetdiag import nlmsg

events = SocketEvents()
assert not any(x.startswith("destroy") for x in events.unavailable), events.unavailable
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
conn, _ = server.accept()
conn.close()
client.close()
# (the process connector is not offered outside the first namespace: no executions here)
print("connection", events.wait(1))
server.close()
print("listener", events.wait(5))
"""


def test_real_destroy_events_a_closed_listener_but_not_a_closed_connection(
    netns: Namespaces,
) -> None:
    """In a namespace of its own, so that no other program's sockets come into it."""
    why = unavailable()
    if why:
        pytest.skip(why)
    ns = netns.create("evt")
    ns.run("ip", "link", "set", "lo", "up")
    out = ns.run(sys.executable, "-c", DESTROYS)
    assert out.stdout.split() == ["connection", "False", "listener", "True"], out.stderr


LISTEN = """
import socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
sys.stdin.read()
"""


def test_daemon_sees_a_new_listener_long_before_its_schedule(instance: Instance) -> None:
    """In the first namespace (where the process connector exists): the schedule is an hour,
    so only the events can bring the alerts."""
    need_root()
    events = SocketEvents()
    events.close()
    if events.unavailable:
        pytest.skip(f"not available here: {events.unavailable}")
    data = {
        "files": {"enabled": False},
        "logs": {"enabled": False},
        "sockets": {"schedule": "1h", "event_gap": "0.2s"},
    }
    instance.config.write_text(tomli_w.dumps(data))
    old = Listener()
    d = Daemon(instance)
    try:
        d.wait_for("took the .* current listeners as version 1")
        new = Listener()
        alert, _ = d.wait_alert(
            lambda a: a["kind"] == "listener-new" and a["subject"] == new.subject
        )
        assert "python" in alert["detail"]["new"]
        old.stop()  # a listener of the baseline goes: its destroyed socket says so
        d.wait_alert(lambda a: a["kind"] == "listener-gone" and a["subject"] == old.subject)
        new.stop()
    finally:
        assert d.stop() == 0


class Listener:
    """A program listening on a free loopback port until :meth:`stop`."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.subject = f"tcp/127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LISTEN, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)
