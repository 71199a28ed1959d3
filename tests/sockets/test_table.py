"""The socket table equals ``ss -tulpn``'s, read inside a namespace holding thousands of sockets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Instance
from tests.netns import Namespace, Namespaces, unavailable

#: Opens N TCP listeners (half IPv4 on 127.0.0.1, half IPv6 on ::), N/4 UDP sockets, and a few
#: established connections, then waits.
HOLDER = r"""
import socket, sys, time
n = int(sys.argv[1])
keep = []
for i in range(n):
    fam, addr = (socket.AF_INET, "127.0.0.1") if i % 2 else (socket.AF_INET6, "::")
    s = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 20000 + i))
    s.listen(8)
    keep.append(s)
for i in range(n // 4):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 40000 + i))
    keep.append(u)
for i in range(5):
    c = socket.create_connection(("127.0.0.1", 20001 + 2 * i))
    keep.append(c)
print("ready", flush=True)
time.sleep(600)
"""

_SS_PROC = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')


def _ss_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host == "*":
        host = "::"
    return host.partition("%")[0], int(port)


def ss_listeners(ns: Namespace) -> set[tuple[str, str, int, int, int, tuple[tuple[str, int], ...]]]:
    out = ns.run("ss", "-tulpnH").stdout
    rows = set()
    for line in out.splitlines():
        f = line.split()
        addr, port = _ss_endpoint(f[4])
        procs = tuple(sorted((m[0], int(m[1])) for m in _SS_PROC.findall(line)))
        rows.add((f[0], addr, port, int(f[2]), int(f[3]), procs))
    return rows


def ours(instance: Instance, ns: Namespace, *extra: str) -> list[dict[str, object]]:
    r = instance.cli("sockets", "--netns", ns.name, "--json", *extra)
    assert r.rc == 0, r.err
    return [json.loads(x) for x in r.out.splitlines()]


@pytest.fixture
def busy(netns: Namespaces) -> Iterator[tuple[Namespace, int]]:
    why = unavailable()
    if why:
        pytest.skip(why)
    ns = netns.create("sock")
    ns.run("ip", "link", "set", "lo", "up")
    proc = ns.popen(sys.executable, "-c", HOLDER, "2000", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield ns, proc.pid


def test_listeners_equal_ss(instance: Instance, busy: tuple[Namespace, int]) -> None:
    ns, _ = busy
    expected = ss_listeners(ns)
    assert len(expected) >= 2500
    got = {
        (
            str(s["proto"]),
            str(s["local_address"]),
            int(str(s["local_port"])),
            int(str(s["recv_q"])),
            int(str(s["send_q"])),  # a listener's accept-queue limit, as ss shows it
            tuple(sorted((str(p["program"]), int(str(p["pid"]))) for p in s["processes"])),  # type: ignore[attr-defined]
        )
        for s in ours(instance, ns, "-l")
    }
    assert got == expected


def test_filters_and_established(instance: Instance, busy: tuple[Namespace, int]) -> None:
    ns, pid = busy
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    est = ours(instance, ns, "--state", "ESTAB", "-t")
    # five client ends, and five server ends the kernel completed (never accept()ed)
    assert len(est) == 10
    assert {s["state"] for s in est} == {"ESTAB"}
    one = ours(instance, ns, "-l", "--port", "20001")
    assert [(s["local_address"], s["local_port"], s["program"]) for s in one] == [
        ("127.0.0.1", 20001, comm)
    ]
    udp = ours(instance, ns, "-u")
    assert len(udp) == 500 and all(s["state"] == "UNCONN" for s in udp)
    assert ours(instance, ns, "--program", "no-such-program") == []


def test_unknown_namespace_is_one_line(instance: Instance) -> None:
    r = instance.cli("sockets", "--netns", "stk-no-such-ns")
    assert r.rc == 2
    assert r.err.strip().count("\n") == 0
    assert "no such network namespace" in r.err


def test_bad_options_are_one_line(instance: Instance) -> None:
    for args in (("--port", "70000"), ("--port", "x"), ("frobnicate",)):
        r = instance.run("sockets", *args)
        assert r.rc == 2, args
        assert r.err.strip().count("\n") == 0 and "error" in r.err


def test_table_of_this_namespace_lists_own_listener(instance: Instance) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = instance.run("sockets", "-l", "-t", "--port", str(port), "--json")
        assert r.rc == 0, r.err
        (row,) = r.json_lines()
    assert (row["local_address"], row["state"]) == ("127.0.0.1", "LISTEN")
    assert row["pid"] == os.getpid()
