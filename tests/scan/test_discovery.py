"""Host discovery (``stockade scan -sn`` and before port scans) on a /24 in namespaces where a
few addresses live: one answering everything, some dropping ICMP but answering on TCP or UDP,
one answering nothing; as root (raw probes) and as nobody (connect()), IPv4 and IPv6, with
packet loss, and next to nmap on the same addresses."""

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

NET = "10.85.0"
# address -> the only answer its rules leave (None: any answer will do)
LIVE = {
    f"{NET}.1": None,  # the scanner itself
    f"{NET}.2": None,  # the LAN namespace's own address
    f"{NET}.10": None,  # answers everything
    f"{NET}.20": "syn-ack",  # drops ICMP, UDP and TCP but to 443, where it listens
    f"{NET}.30": "reset",  # drops ICMP and UDP: closed TCP ports answer with resets
    f"{NET}.40": "port-unreach",  # drops ICMP and TCP: a closed UDP port answers
    f"{NET}.60": "echo-reply",  # drops TCP and UDP
}
SILENT = f"{NET}.50"  # drops everything
RULES = f"""
table inet lan {{
 chain input {{
  type filter hook input priority 0;
  ip daddr {{ {NET}.20, {NET}.30, {NET}.40 }} icmp type echo-request drop
  ip daddr {{ {NET}.20, {NET}.30 }} meta l4proto udp drop
  ip daddr {NET}.20 tcp dport != 443 drop
  ip daddr {NET}.40 meta l4proto tcp drop
  ip daddr {NET}.60 meta l4proto {{ tcp, udp }} drop
  ip daddr {SILENT} drop
  ip6 daddr fd85::20 meta l4proto {{ icmpv6, udp }} drop
  ip6 daddr fd85::50 drop
 }}
}}
"""
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


@dataclass
class Lan:
    scanner: Namespace
    lan: Namespace


@pytest.fixture
def lan(netns: Namespaces) -> Lan:
    scanner, lan = netns.create("dscan"), netns.create("dlan")
    hosts = [f"{NET}.{n}/24" for n in (2, 10, 20, 30, 40, 50, 60)]
    hosts6 = [f"fd85::{n}/64" for n in (2, 10, 20, 50)]
    netns.link(scanner, lan, [f"{NET}.1/24", "fd85::1/64"], hosts + hosts6)
    lan.run("nft", "-f", "-", input=RULES)
    listener = (
        "import socket, sys, time\ns = socket.socket()\n"
        f"s.bind(('{NET}.20', 443))\ns.listen()\nprint('ready', flush=True)\ntime.sleep(3600)\n"
    )
    proc = lan.popen(sys.executable, "-c", listener, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return Lan(scanner, lan)


def scan(
    instance: Instance, ns: Namespace, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    argv = [*prefix, sys.executable, "-m", "stockade", *instance.args("scan", *args)]
    return ns.run(*argv, check=False, timeout=300)


def hosts(out: str) -> dict[str, dict[str, Any]]:
    return {h["address"]: h for h in map(json.loads, out.splitlines())}


def check_live(found: dict[str, dict[str, Any]], live: dict[str, str | None]) -> None:
    up = {a for a, h in found.items() if h["state"] == "up"}
    assert up == set(live)
    for address, reason in live.items():
        h = found[address]
        assert reason is None or h["reason"] == reason, (address, h)
        assert h["rtt"] is not None and 0 < h["rtt"] < 3  # (a repeated ARP: ~1 s)
    for h in found.values():
        if h["state"] == "down":
            assert h["rtt"] is None and h["ports"] == []
            # silence, or our kernel's word that neighbour discovery failed (after ~3 s)
            assert h["reason"] in ("no-response", "host-unreach"), h


def test_sn_finds_exactly_the_live_addresses(instance: Instance, lan: Lan) -> None:
    r = scan(instance, lan.scanner, "-sn", f"{NET}.0/24", "--json")
    assert r.returncode == 0, r.stderr
    found = hosts(r.stdout)
    assert len(found) == 254
    check_live(found, LIVE)
    assert found[SILENT]["state"] == "down"
    # the table lists the hosts found up, and counts them
    r = scan(instance, lan.scanner, "-sn", f"{NET}.0/24")
    assert r.returncode == 0, r.stderr
    listed = re.findall(r"^(\S+): up \((\S+), [\d.]+ ms\)$", r.stdout, re.M)
    assert {a for a, _ in listed} == set(LIVE)
    assert "254 addresses (7 hosts up) in " in r.stdout


def test_ipv6(instance: Instance, lan: Lan) -> None:
    r = scan(instance, lan.scanner, "-sn", "fd85::1-fd85::60", "--json")
    assert r.returncode == 0, r.stderr
    found = hosts(r.stdout)
    assert len(found) == 0x60
    check_live(found, {"fd85::1": None, "fd85::2": None, "fd85::10": None, "fd85::20": "reset"})


def test_lossy_network_loses_no_host(instance: Instance, lan: Lan) -> None:
    # a fifth of everything the scanner sends is lost on the way in
    rules = (
        "table inet loss {\n chain input {\n  type filter hook input priority -10;\n"
        f"  ip saddr {NET}.1 numgen random mod 100 < 20 counter drop\n }}\n}}\n"
    )
    lan.lan.run("nft", "-f", "-", input=rules)
    r = scan(instance, lan.scanner, "-sn", "--retries", "6", f"{NET}.0/26", "--json")
    assert r.returncode == 0, r.stderr
    check_live(hosts(r.stdout), LIVE)
    dropped = lan.lan.run("nft", "list", "table", "inet", "loss").stdout
    assert int(re.search(r"packets (\d+)", dropped).group(1)) > 0  # type: ignore[union-attr]


def test_unprivileged_discovery(instance: Instance, lan: Lan) -> None:
    """connect() to 80 and 443, a connected UDP socket, and ICMP echo through a ping socket
    once the namespace allows the group."""
    need_tool("setpriv")
    for allow_ping in (False, True):
        if allow_ping:
            lan.scanner.run("sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        r = scan(instance, lan.scanner, "-sn", f"{NET}.0/26", "--json", prefix=NOBODY)
        assert r.returncode == 0, r.stderr
        live = dict(LIVE)
        if not allow_ping:
            del live[f"{NET}.60"]  # it answers ICMP echo only
        check_live(hosts(r.stdout), live)


def test_only_hosts_found_up_are_port_scanned(instance: Instance, lan: Lan) -> None:
    r = scan(instance, lan.scanner, f"{NET}.1-60", "-p", "22,443", "--json")
    assert r.returncode == 0, r.stderr
    found = hosts(r.stdout)
    check_live(found, LIVE)
    for address in LIVE:
        assert [p["port"] for p in found[address]["ports"]] == [22, 443]
    assert found[f"{NET}.20"]["ports"][1]["state"] == "open"
    # the table leaves out the hosts found down
    r = scan(instance, lan.scanner, f"{NET}.1-60", "-p", "443")
    assert r.returncode == 0, r.stderr
    assert set(re.findall(r"^(\S+): up, ", r.stdout, re.M)) == set(LIVE)
    assert "60 addresses (7 hosts up)" in r.stdout


def test_same_hosts_as_nmap(instance: Instance, lan: Lan) -> None:
    need_tool("nmap")
    targets = f"{NET}.1-2,10,20,30,40,50,60,99"
    # nmap's probes as root, by IP (on a LAN nmap would otherwise ask ARP, which even the
    # silent host answers), with our UDP port
    nmap = lan.scanner.run(
        "nmap", "-n", "-sn", "--send-ip", "-PE", "-PS443", "-PA80", "-PU40125", "-oX", "-",
        targets,
    )  # fmt: skip
    theirs = set(re.findall(r'<status state="up"[^>]*/>\s*<address addr="([^"]+)"', nmap.stdout))
    r = scan(instance, lan.scanner, "-sn", targets, "--json")
    assert r.returncode == 0, r.stderr
    ours = {a for a, h in hosts(r.stdout).items() if h["state"] == "up"}
    assert ours == theirs == set(LIVE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-sn", "-Pn", "127.0.0.1"), "-sn and -Pn together leave nothing to do"),
        (("-sn", "-sS", "127.0.0.1"), "not allowed with argument"),
    ],
)
def test_bad_flags_are_one_line(instance: Instance, args: tuple[str, ...], message: str) -> None:
    r = instance.run("scan", *args)
    assert r.rc == 2
    assert message in r.err and r.err.strip().count("\n") == 0
