"""``stockade ping`` between namespaces (client → router → server), next to iputils ping run
in the same namespace: the same replies, TTLs that show the real topology, loss counted
against the packets an nftables rule really dropped, errors, duplicates, other pings' replies,
IPv6, and the unprivileged datagram socket."""

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

REPLY = re.compile(r"^(\d+) bytes from (\S+): icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms$")
COUNTS = re.compile(
    r"^(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?, "
    r"([\d.]+)% packet loss, time (\d+)ms$"
)
RTT = re.compile(r"^rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms$")
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


@dataclass
class Routed:
    client: Namespace
    router: Namespace
    server: Namespace
    server_if: str  # the server's end of its link to the router


@pytest.fixture
def routed(netns: Namespaces) -> Routed:
    """client (10.84.1.2, fd84:1::2) → router → server (10.84.2.2, fd84:2::2)."""
    client, router, server = netns.create("pc"), netns.create("pr"), netns.create("ps")
    netns.link(client, router, ["10.84.1.2/24", "fd84:1::2/64"], ["10.84.1.1/24", "fd84:1::1/64"])
    back = netns.link(
        router, server, ["10.84.2.1/24", "fd84:2::1/64"], ["10.84.2.2/24", "fd84:2::2/64"]
    )
    router.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    for ns, gw4, gw6 in ((client, "10.84.1.1", "fd84:1::1"), (server, "10.84.2.1", "fd84:2::1")):
        ns.run("ip", "route", "add", "default", "via", gw4)
        ns.run("ip", "-6", "route", "add", "default", "via", gw6)
    return Routed(client, router, server, back.right_if)


def stockade(
    instance: Instance, ns: Namespace, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    argv = [*prefix, sys.executable, "-m", "stockade", *instance.args("ping", *args)]
    return ns.run(*argv, check=False, timeout=120)


def parsed(out: str) -> dict[str, Any]:
    """The fields of a ping transcript (ours or iputils')."""
    lines = out.splitlines()
    replies = [m.groups()[:4] for m in map(REPLY.match, lines) if m]
    counts = next(m.groups() for m in map(COUNTS.match, lines) if m)
    rtt = [m.groups() for m in map(RTT.match, lines) if m]
    problems = [ln.split(" ", 3)[1::2] for ln in lines if ln.startswith("From ")]
    return {
        "head": lines[0],
        "replies": replies,
        "transmitted": int(counts[0]),
        "received": int(counts[1]),
        "errors": int(counts[3] or 0),
        "loss": counts[4],
        "rtt": [float(x) for x in rtt[0]] if rtt else None,
        "problems": problems,
    }


@pytest.mark.parametrize(
    ("target", "ttl", "flags"),
    [("10.84.2.2", "63", ()), ("10.84.1.1", "64", ()), ("fd84:2::2", "63", ("-6",))],
)
def test_replies_match_iputils_and_the_topology(
    instance: Instance, routed: Routed, target: str, ttl: str, flags: tuple[str, ...]
) -> None:
    need_tool("ping")
    ours = stockade(instance, routed.client, *flags, "-c", "3", "-i", "0.2", target)
    theirs = routed.client.run("ping", *flags, "-n", "-c", "3", "-i", "0.2", target, check=False)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    a, b = parsed(ours.stdout), parsed(theirs.stdout)
    assert a["head"] == b["head"]
    # bytes, source, sequence and TTL of every reply are the same; one router away: TTL 63
    assert a["replies"] == b["replies"] == [("64", target, str(n), ttl) for n in (1, 2, 3)]
    for key in ("transmitted", "received", "loss"):
        assert a[key] == b[key]
    low, avg, high, mdev = a["rtt"]
    assert 0 < low <= avg <= high and 0 <= mdev <= high - low
    assert ours.stdout.splitlines()[-3] == f"--- {target} ping statistics ---"


def test_json_summary_agrees_with_its_replies(instance: Instance, routed: Routed) -> None:
    r = stockade(instance, routed.client, "-c", "4", "-i", "0.05", "--json", "10.84.2.2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["mode"] == "raw" and doc["address"] == "10.84.2.2"
    assert [(x["seq"], x["ttl"], x["from"], x["bytes"]) for x in doc["replies"]] == [
        (n, 63, "10.84.2.2", 64) for n in (1, 2, 3, 4)
    ]
    rtts = [x["rtt_ms"] for x in doc["replies"]]
    mean = sum(rtts) / 4
    mdev = (sum(x * x for x in rtts) / 4 - mean * mean) ** 0.5  # population, as iputils
    assert doc["rtt_ms"]["min"] == min(rtts) and doc["rtt_ms"]["max"] == max(rtts)
    assert doc["rtt_ms"]["avg"] == pytest.approx(mean, abs=0.002)
    assert doc["rtt_ms"]["mdev"] == pytest.approx(mdev, abs=0.002)
    assert (doc["transmitted"], doc["received"], doc["loss"]) == (4, 4, 0)


def test_loss_equals_what_nftables_dropped(instance: Instance, routed: Routed) -> None:
    rules = (
        "table inet lossy {\n chain input {\n  type filter hook input priority 0;\n"
        "  icmp type echo-request numgen random mod 100 < 20 counter drop\n }\n}\n"
    )
    routed.server.run("nft", "-f", "-", input=rules)
    r = stockade(instance, routed.client, "-c", "200", "-i", "0.005", "-W", "1", "10.84.2.2")
    assert r.returncode == 0, r.stderr
    counter = routed.server.run("nft", "list", "table", "inet", "lossy").stdout
    dropped = int(re.search(r"counter packets (\d+)", counter).group(1))  # type: ignore[union-attr]
    got = parsed(r.stdout)
    assert 0 < dropped < 200
    assert got["transmitted"] == 200 and got["received"] == 200 - dropped
    assert float(got["loss"]) == pytest.approx(dropped * 100 / 200)
    assert f", {dropped * 100 / 200:g}% packet loss" in r.stdout  # printed as ping's %g
    seqs = [int(x[2]) for x in got["replies"]]
    assert len(seqs) == len(set(seqs)) == 200 - dropped


def test_nobody_there(instance: Instance, routed: Routed) -> None:
    need_tool("ping")
    # the router's neighbour lookup of .99 fails only after about 3 s: before that, silence
    ours = stockade(instance, routed.client, "-c", "2", "-i", "0.2", "-W", "0.5", "10.84.2.99")
    theirs = routed.client.run("ping", "-n", "-c", "2", "-i", "0.2", "-W", "0.5", "10.84.2.99",
                               check=False)  # fmt: skip
    assert ours.returncode == theirs.returncode == 1
    a, b = parsed(ours.stdout), parsed(theirs.stdout)
    assert (a["transmitted"], a["received"], a["loss"], a["rtt"]) == (2, 0, "100", None)
    assert (b["transmitted"], b["received"], b["loss"]) == (2, 0, "100")


def test_unreachable_errors_as_iputils_reports_them(instance: Instance, routed: Routed) -> None:
    need_tool("ping")
    args = ("-c", "6", "-i", "0.7", "-W", "1", "10.84.2.99")
    argv = [sys.executable, "-m", "stockade", *instance.args("ping", *args)]
    ours = routed.client.popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    theirs = routed.client.run("ping", "-n", *args, check=False)
    out, err = ours.communicate(timeout=60)
    assert ours.returncode == theirs.returncode == 1, err
    a, b = parsed(out), parsed(theirs.stdout)
    # the router gives up on the neighbour after ~3 s and says so for the queued requests
    assert a["problems"] and b["problems"]
    assert {tuple(p) for p in a["problems"]} <= {("10.84.1.1", "Destination Host Unreachable")} | {
        tuple(p) for p in b["problems"]
    }
    assert {p[0] for p in a["problems"]} == {p[0] for p in b["problems"]} == {"10.84.1.1"}
    assert a["errors"] == len(a["problems"]) and a["received"] == 0


def test_duplicates_and_other_pings_are_not_counted(instance: Instance, routed: Routed) -> None:
    need_tool("ping")
    # the server sends every echo reply twice
    rules = (
        "table ip twice {\n chain output {\n  type filter hook output priority 0;\n"
        f"  icmp type echo-reply dup to 10.84.2.1 device {routed.server_if}\n }}\n}}\n"
    )
    routed.server.run("nft", "-f", "-", input=rules)
    # and another ping runs meanwhile, whose replies our raw socket also sees
    other = routed.client.popen(
        "ping", "-n", "-q", "-i", "0.01", "-c", "150", "10.84.2.2", stdout=subprocess.PIPE
    )
    r = stockade(instance, routed.client, "-c", "20", "-i", "0.05", "--json", "10.84.2.2")
    other.communicate(timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["transmitted"], doc["received"], doc["loss"]) == (20, 20, 0)
    assert [x["seq"] for x in doc["replies"]] == list(range(1, 21))
    assert doc["duplicates"] >= 10  # seen, and left out of the counts


def test_unprivileged_datagram_socket(instance: Instance, routed: Routed) -> None:
    need_tool("setpriv")
    # ping sockets are refused until the namespace allows the group
    r = stockade(instance, routed.client, "-c", "1", "10.84.2.2", prefix=NOBODY)
    assert r.returncode == 2 and "ping_group_range" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    routed.client.run("sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    for target in ("10.84.2.2", "fd84:2::2"):
        r = stockade(
            instance, routed.client, "-c", "2", "-i", "0.1", "--json", target, prefix=NOBODY
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["mode"] == "datagram"
        assert [(x["seq"], x["ttl"], x["from"]) for x in doc["replies"]] == [
            (1, 63, target),
            (2, 63, target),
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "0", "127.0.0.1"), "-c: COUNT must be 1 or more"),
        (("-i", "0.001", "127.0.0.1"), "-i: INTERVAL must be at least 0.002 seconds"),
        (("-W", "0", "127.0.0.1"), "-W and -w"),
        (("-6", "127.0.0.1"), "not an IPv6 address"),
        (("-4", "::1"), "not an IPv4 address"),
        (("-4", "-6", "::1"), "not allowed with argument"),
    ],
)
def test_bad_input_is_one_line(instance: Instance, args: tuple[str, ...], message: str) -> None:
    r = instance.run("ping", *args)
    assert r.rc == 2
    assert message in r.err and r.err.strip().count("\n") == 0


def test_no_route_or_no_name_is_one_line(instance: Instance, netns: Namespaces) -> None:
    lonely = netns.create("plone")  # no route anywhere: a name look-up cannot leave it either
    r = stockade(instance, lonely, "-c", "1", "10.84.9.9")
    assert r.returncode == 2
    assert r.stderr.strip() == "stockade: error: ping 10.84.9.9: Network is unreachable"
    r = stockade(instance, lonely, "-c", "1", "no-such-host.invalid")
    assert r.returncode == 2
    assert "ping no-such-host.invalid: the name does not resolve" in r.stderr
    assert r.stderr.strip().count("\n") == 0
