"""``stockade traceroute`` (and ``scan --traceroute``) through a chain of router namespaces.

client → r1 → r2 → server, with a second way r1 → r3 → server; the target is an address on
the server's loopback, reached through r2 until r1's route is switched to r3. Every router
answers time exceeded from the address facing the client, so the hops are known in advance;
the real ``traceroute -n`` from the same namespace must print the same lines (RTTs aside).
ICMP rate limits are off in the lab so repeated traces always get every answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Instance, need_tool
from tests.netns import Namespace, Namespaces

TARGET = {4: "10.91.9.9", 6: "fd91:9::9"}
R1 = {4: "10.91.1.1", 6: "fd91:1::1"}  # r1, on the client's link
R2 = {4: "10.91.2.2", 6: "fd91:2::2"}  # r2, on r1's link
R3 = {4: "10.91.4.2", 6: "fd91:4::2"}  # r3, on r1's link
VIA_R3 = {4: "10.91.4.2", 6: "fd91:4::2"}
VERSIONS = [4, 6]
MODES = ["udp", "icmp"]


_ROUND_TRIP = r"""
import socket, sys
for host in sys.argv[1:]:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect((host, 9))
        s.send(b"")
        try:
            s.recv(1)
        except ConnectionRefusedError:
            pass
"""


@dataclass
class Lab:
    client: Namespace
    r1: Namespace
    r2: Namespace
    r3: Namespace
    server: Namespace

    def stockade(self, *args: str, ns: Namespace | None = None) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "stockade", *args]
        return (ns or self.client).run(*argv, check=False, timeout=120)

    def trace_json(self, target: str, *args: str) -> dict[str, Any]:
        r = self.stockade("traceroute", "--json", "-w", "3", *args, target)
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)
        return out


def _sysctl(ns: Namespace, *settings: str) -> None:
    for s in settings:
        ns.run("sysctl", "-qw", s)


def _ip(ns: Namespace, *args: str) -> None:
    ns.run("ip", *args)


@pytest.fixture
def lab(netns: Namespaces) -> Lab:
    names = ["client", "r1", "r2", "r3", "server"]
    made = {n: netns.create(n) for n in names}
    for ns in made.values():
        # no duplicate address detection on new links: their addresses work at once
        _sysctl(ns, "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
    c, r1, r2, r3, s = (made[n] for n in names)
    for a, b, net in ((c, r1, 1), (r1, r2, 2), (r2, s, 3), (r1, r3, 4), (r3, s, 5)):
        x, y = (2, 1) if a is c else (1, 2)  # routers are .1 on the client's link
        netns.link(
            a,
            b,
            [f"10.91.{net}.{x}/24", f"fd91:{net}::{x}/64"],
            [f"10.91.{net}.{y}/24", f"fd91:{net}::{y}/64"],
        )
    _ip(s, "addr", "add", f"{TARGET[4]}/32", "dev", "lo")
    _ip(s, "addr", "add", f"{TARGET[6]}/128", "dev", "lo")
    for ns in (r1, r2, r3):
        _sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    for ns in (r1, r2, r3, s):  # answer every probe: no ICMP rate limit in the lab
        _sysctl(ns, "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
    routes = [
        (c, "default", "10.91.1.1", "fd91:1::1"),
        (r1, TARGET, "10.91.2.2", "fd91:2::2"),
        (r2, "default", "10.91.2.1", "fd91:2::1"),
        (r2, TARGET, "10.91.3.2", "fd91:3::2"),
        (r3, "default", "10.91.4.1", "fd91:4::1"),
        (r3, TARGET, "10.91.5.2", "fd91:5::2"),
        (s, "default", "10.91.3.1", "fd91:3::1"),
    ]
    for ns, dest, via4, via6 in routes:
        d4, d6 = (dest, dest) if isinstance(dest, str) else (dest[4], dest[6])
        _ip(ns, "route", "add", d4, "via", via4)
        _ip(ns, "-6", "route", "add", d6, "via", via6)
    # One datagram there and a port unreachable back: every neighbour on the way is resolved.
    # (A router's first IPv6 neighbour discovery takes a second; the probes need not wait.)
    c.run(sys.executable, "-c", _ROUND_TRIP, TARGET[4], TARGET[6])
    return Lab(c, r1, r2, r3, s)


def _path(result: dict[str, Any]) -> list[str | None]:
    return [h["address"] for h in result["path"]]


@pytest.mark.parametrize("v", VERSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_hops_are_the_routers_in_order(lab: Lab, v: int, mode: str) -> None:
    got = lab.trace_json(TARGET[v], *(["-I"] if mode == "icmp" else []))
    assert got["protocol"] == mode and got["address"] == TARGET[v] and got["reached"]
    assert _path(got) == [R1[v], R2[v], TARGET[v]]
    assert [h["ttl"] for h in got["path"]] == [1, 2, 3]
    for hop in got["path"]:
        assert len(hop["rtts"]) == 3 and all(0 <= r < 3 for r in hop["rtts"])
        assert "marks" not in hop and "responders" not in hop


def _normalised(text: str) -> list[str]:
    return [re.sub(r"\d+\.\d{3} ms", "N ms", line) for line in text.splitlines()]


def _compare_with_traceroute(lab: Lab, *args: str) -> list[str]:
    need_tool("traceroute")
    ours = lab.stockade("traceroute", *args)
    assert ours.returncode == 0, ours.stderr
    real = lab.client.run("traceroute", "-n", *args, check=False)
    assert real.returncode == 0, real.stderr
    assert _normalised(ours.stdout) == _normalised(real.stdout)
    return _normalised(ours.stdout)


@pytest.mark.parametrize("v", VERSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_output_matches_real_traceroute(lab: Lab, v: int, mode: str) -> None:
    lines = _compare_with_traceroute(lab, *(["-I"] if mode == "icmp" else []), TARGET[v])
    size = 60 if v == 4 else 80
    assert lines == [
        f"traceroute to {TARGET[v]} ({TARGET[v]}), 30 hops max, {size} byte packets",
        f" 1  {R1[v]}  N ms  N ms  N ms",
        f" 2  {R2[v]}  N ms  N ms  N ms",
        f" 3  {TARGET[v]}  N ms  N ms  N ms",
    ]


@pytest.mark.parametrize("v", VERSIONS)
def test_router_that_drops_time_exceeded_is_a_star(lab: Lab, v: int) -> None:
    rules = """table inet quiet {
        chain quiet_out {
            type filter hook output priority 0
            icmp type time-exceeded drop
            icmpv6 type time-exceeded drop
        }
    }"""
    lab.r2.run("nft", "-f", "-", input=rules)
    for mode in MODES:
        got = lab.trace_json(TARGET[v], "-w", "1", *(["-I"] if mode == "icmp" else []))
        assert _path(got) == [R1[v], None, TARGET[v]]
        assert got["path"][1]["rtts"] == [None, None, None]
    lines = _compare_with_traceroute(lab, "-w", "1", TARGET[v])
    assert lines[2] == " 2  * * *"


@pytest.mark.parametrize(
    ("v", "reject", "mark"),
    [
        (4, "icmp type host-unreachable", "!H"),
        (4, "icmp type net-unreachable", "!N"),
        (4, "icmp type prot-unreachable", "!P"),
        (4, "icmp type admin-prohibited", "!X"),
        (4, "icmp type host-prohibited", "!X"),
        (4, "icmp type net-prohibited", "!X"),
        (6, "icmpv6 type admin-prohibited", "!X"),
        (6, "icmpv6 type addr-unreachable", "!H"),
        (6, "icmpv6 type no-route", "!N"),
        (6, "icmpv6 type policy-fail", "!<5>"),
        (6, "icmpv6 type reject-route", "!<6>"),
    ],
)
def test_unreachable_ends_the_trace_with_its_mark(lab: Lab, v: int, reject: str, mark: str) -> None:
    family = "ip" if v == 4 else "ip6"
    rules = f"""table inet wall {{
        chain wall_forward {{
            type filter hook forward priority 0
            {family} daddr {TARGET[v]} reject with {reject}
        }}
    }}"""
    lab.r2.run("nft", "-f", "-", input=rules)
    got = lab.trace_json(TARGET[v])
    # TTL 2 still expires in r2 (before its forward hook): r2 is hop 2, and rejects at hop 3
    assert _path(got) == [R1[v], R2[v], R2[v]] and not got["reached"]
    assert "marks" not in got["path"][1] and got["path"][2]["marks"] == [mark] * 3
    lines = _compare_with_traceroute(lab, TARGET[v])
    assert lines[3:] == [f" 3  {R2[v]}  N ms {mark}  N ms {mark}  N ms {mark}"]


@pytest.mark.parametrize("v", VERSIONS)
def test_switched_route_gives_the_other_path(lab: Lab, v: int) -> None:
    assert _path(lab.trace_json(TARGET[v], "-q", "1")) == [R1[v], R2[v], TARGET[v]]
    _ip(lab.r1, f"-{v}", "route", "replace", TARGET[v], "via", VIA_R3[v])
    for mode in MODES:
        got = lab.trace_json(TARGET[v], "-q", "1", *(["-I"] if mode == "icmp" else []))
        assert _path(got) == [R1[v], R3[v], TARGET[v]]
    _compare_with_traceroute(lab, TARGET[v])


def test_first_and_max_ttl_and_queries(lab: Lab) -> None:
    got = lab.trace_json(TARGET[4], "-f", "2", "-q", "2")
    assert [(h["ttl"], h["address"], len(h["rtts"])) for h in got["path"]] == [
        (2, R2[4], 2),
        (3, TARGET[4], 2),
    ]
    short = lab.trace_json(TARGET[4], "-m", "2")
    assert _path(short) == [R1[4], R2[4]] and not short["reached"]
    _compare_with_traceroute(lab, "-m", "2", "-q", "1", "-f", "2", TARGET[4])
    # UDP probes go to the ports from -p upward: the same path from another first port
    assert _path(lab.trace_json(TARGET[4], "-p", "40000")) == [R1[4], R2[4], TARGET[4]]


@pytest.mark.parametrize("v", VERSIONS)
def test_icmp_mode_without_raw_sockets_uses_a_ping_socket(lab: Lab, v: int) -> None:
    """Without CAP_NET_RAW only an ICMP datagram socket works: refused until the group is in
    net.ipv4.ping_group_range (which covers IPv6 too), then the same path."""
    need_tool("setpriv")
    no_raw = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]
    argv = [*no_raw, sys.executable, "-m", "stockade", "traceroute", "--json"]
    denied = lab.client.run(*argv, "-I", TARGET[v], check=False)
    assert denied.returncode == 2
    assert "ICMP probes need root or your group in net.ipv4.ping_group_range" in denied.stderr
    assert denied.stderr.strip().count("\n") == 0
    udp = lab.client.run(*argv, TARGET[v], check=False)  # UDP probes need no privilege
    assert udp.returncode == 0, udp.stderr
    assert _path(json.loads(udp.stdout)) == [R1[v], R2[v], TARGET[v]]
    _sysctl(lab.client, "net.ipv4.ping_group_range=0 0")
    allowed = lab.client.run(*argv, "-I", TARGET[v], check=False)
    assert allowed.returncode == 0, allowed.stderr
    assert _path(json.loads(allowed.stdout)) == [R1[v], R2[v], TARGET[v]]


def test_scan_traceroute_fills_the_path(lab: Lab) -> None:
    lab.server.serve_tcp([22])
    r = lab.stockade("scan", "--traceroute", "-p", "22", "--json", TARGET[4], TARGET[6])
    assert r.returncode == 0, r.stderr
    hosts = [json.loads(line) for line in r.stdout.splitlines()]
    assert [[p["state"] for p in h["ports"]] for h in hosts] == [["open"], ["open"]]
    assert [[hop["address"] for hop in h["path"]] for h in hosts] == [
        [R1[v], R2[v], TARGET[v]] for v in VERSIONS
    ]
    table = lab.stockade("scan", "--traceroute", "-p", "22", TARGET[4])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    at = lines.index("TRACEROUTE")
    assert lines[at + 1].split() == ["HOP", "RTT", "ADDRESS"]
    rows = [ln.split() for ln in lines[at + 2 : at + 5]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("1", "ms", R1[4]),
        ("2", "ms", R2[4]),
        ("3", "ms", TARGET[4]),
    ]
    plain = lab.stockade("scan", "-p", "22", "--json", TARGET[4])
    assert "path" not in json.loads(plain.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-m", "0", "127.0.0.1"), "-m 0: the max TTL is 1-255"),
        (("-m", "256", "127.0.0.1"), "-m 256: the max TTL is 1-255"),
        (("-f", "5", "-m", "3", "127.0.0.1"), "-f 5: the first TTL is 1 to the max TTL (3)"),
        (("-q", "0", "127.0.0.1"), "-q 0: probes per hop are 1-10"),
        (("-q", "11", "127.0.0.1"), "-q 11: probes per hop are 1-10"),
        (("-w", "0", "127.0.0.1"), "-w 0.0: the wait is more than 0"),
        (("-w", "nan", "127.0.0.1"), "-w nan: the wait is more than 0"),
        (("-N", "0", "127.0.0.1"), "-N 0: probes in flight are 1-128"),
        (("-p", "65500", "127.0.0.1"), "-p 65500: the 90 UDP probes use ports"),
        (
            ("-p=-1", "127.0.0.1"),
            "-p -1: the 90 UDP probes use ports from this one upward; give a first port of 1-65446",
        ),
        (("-I", "-p", "70000", "127.0.0.1"), "-p 70000: with -I it is the first sequence"),
        (("-6", "127.0.0.1"), "-6: 127.0.0.1 is an IPv4 address"),
        (("a" * 64 + ".test",), "cannot resolve"),  # refused before any look-up
        (("-q", "x", "127.0.0.1"), "argument -q: invalid int value"),
        ((), "the following arguments are required: HOST"),
    ],
)
def test_bad_arguments_are_one_line(
    instance: Instance, args: tuple[str, ...], message: str
) -> None:
    r = instance.run("traceroute", *args)
    assert r.rc == 2
    assert message in r.err and r.one_line_error, r.err


def test_no_route_is_one_line(netns: Namespaces) -> None:
    alone = netns.create("alone")  # loopback only
    r = alone.run(sys.executable, "-m", "stockade", "traceroute", TARGET[4], check=False)
    assert r.returncode == 2 and r.stdout == ""  # no heading either
    assert (
        r.stderr.strip()
        == f"stockade: error: traceroute to {TARGET[4]}: no route (Network is unreachable)"
    )


def test_scan_group_raises_a_path_change(lab: Lab, instance: Instance) -> None:
    """A monitored host whose route goes through another router: one path-changed delta."""
    import tomli_w

    lab.server.serve_tcp([22])
    group = {
        "name": "paths",
        "targets": [TARGET[4]],
        "ports": "22",
        "discovery": "none",
        "traceroute": True,
        "banners": False,
    }
    instance.config.write_text(tomli_w.dumps({"scan": {"workers": 1, "groups": [group]}}))
    check = ("scan", "check", "--json", "--config", str(instance.config))
    first = lab.stockade(*check, "--state-dir", str(instance.state))
    assert first.returncode == 0, first.stderr
    again = lab.stockade(*check, "--state-dir", str(instance.state))
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    _ip(lab.r1, "-4", "route", "replace", TARGET[4], "via", VIA_R3[4])
    changed = lab.stockade(*check, "--state-dir", str(instance.state))
    assert changed.returncode == 1, changed.stderr
    deltas = [json.loads(line) for line in changed.stdout.splitlines()]
    assert [(d["kind"], d["address"]) for d in deltas] == [("path-changed", TARGET[4])]
    assert deltas[0]["old"] == f"{R1[4]} {R2[4]} {TARGET[4]}"
    assert deltas[0]["new"] == f"{R1[4]} {R3[4]} {TARGET[4]}"
