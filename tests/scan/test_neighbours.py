"""MAC addresses from the kernel's neighbour table: the parsers on their own (odd and fuzzed
input), and a scan of namespace hosts — on the link (MAC = the target veth's, IPv4 and IPv6)
and behind a router (no MAC: neither its own nor the router's)."""

from __future__ import annotations

import json
import sys

from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan.neighbours import neighbour_mac, parse_ip_neigh, parse_proc_arp
from tests.conftest import Instance
from tests.netns import Namespace, Namespaces

ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.77.0.2        0x1         0x2         c6:26:74:98:6F:64     *        veth0
10.77.0.3        0x1         0x0         00:00:00:00:00:00     *        veth0
10.77.0.4        0x1         0x6         02:00:00:00:00:04     *        veth0
10.77.0.5        0x1         zz          02:00:00:00:00:05     *        veth0
10.77.0.6        0x1         0x2         02:00:00:00:00        *        veth0
not-an-ip        0x1         0x2         02:00:00:00:00:07     *        veth0
10.77.0.8        0x1         0x2
"""


def test_proc_arp_keeps_complete_entries_only() -> None:
    assert parse_proc_arp(ARP) == {
        "10.77.0.2": "c6:26:74:98:6f:64",  # lower case, as ip(8) prints it
        "10.77.0.4": "02:00:00:00:00:04",  # permanent and complete
    }
    assert parse_proc_arp("") == {}
    assert parse_proc_arp(ARP.splitlines()[0]) == {}
    assert neighbour_mac("not an address") is None


def test_ip_neigh_keeps_resolved_entries_only() -> None:
    rows = [
        {"dst": "fd77::2", "dev": "v0", "lladdr": "c6:26:74:98:6f:64", "state": ["REACHABLE"]},
        {"dst": "FD77:0::3", "dev": "v0", "lladdr": "02:00:00:00:00:03", "state": ["STALE"]},
        {"dst": "fd77::4", "dev": "v0", "state": ["FAILED"]},
        {"dst": "fd77::5", "dev": "v0", "lladdr": "02:00:00:00:00:05", "state": ["INCOMPLETE"]},
        {"dst": "fe80::1%v0", "dev": "v0", "lladdr": "02:00:00:00:00:06", "state": "odd"},
        {"dst": 7, "lladdr": "02:00:00:00:00:07"},
        "junk",
    ]
    assert parse_ip_neigh(json.dumps(rows)) == {
        "fd77::2": "c6:26:74:98:6f:64",
        "fd77::3": "02:00:00:00:00:03",  # the address in its canonical form
        "fe80::1": "02:00:00:00:00:06",
    }
    for bad in ("", "not json", "{}", "[1, 2]", "null"):
        assert parse_ip_neigh(bad) == {}


@given(st.text(max_size=400))
def test_proc_arp_parser_never_raises(text: str) -> None:
    for address, mac in parse_proc_arp(text).items():
        assert ":" not in address and len(mac) == 17


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
neigh_rows = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "dst": st.sampled_from(["fd00::1", "10.0.0.1", "x", ""]) | json_values,
            "lladdr": st.sampled_from(["02:00:00:00:00:01", "02:00"]) | json_values,
            "state": st.lists(st.sampled_from(["REACHABLE", "FAILED"]) | json_values) | json_values,
        },
    ),
    max_size=5,
)


@given(neigh_rows | json_values)
def test_ip_neigh_parser_never_raises(rows: object) -> None:
    for mac in parse_ip_neigh(json.dumps(rows)).values():
        assert len(mac) == 17


# --- live ---------------------------------------------------------------------------------


def scan_json(instance: Instance, scanner: Namespace, *args: str) -> list[dict[str, object]]:
    argv = [sys.executable, "-m", "stockade", *instance.args("scan", "--json", *args)]
    done = scanner.run(*argv, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def link_mac(namespace: Namespace, ifname: str) -> str:
    (row,) = json.loads(namespace.run("ip", "-j", "link", "show", "dev", ifname).stdout)
    return str(row["address"])


def test_scan_fills_the_mac_of_hosts_on_the_link(instance: Instance, netns: Namespaces) -> None:
    scanner, target, router, far = (netns.create(n) for n in ("smac", "tmac", "rmac", "fmac"))
    near = netns.link(
        scanner, target, ["10.78.0.1/24", "fd78::1/64"], ["10.78.0.2/24", "fd78::2/64"]
    )
    netns.link(scanner, router, ["10.78.1.1/24", "fd78:1::1/64"], ["10.78.1.2/24", "fd78:1::2/64"])
    netns.link(router, far, ["10.78.2.1/24", "fd78:2::1/64"], ["10.78.2.2/24", "fd78:2::2/64"])
    router.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    for net, via in (("10.78.2.0/24", "10.78.1.2"), ("fd78:2::/64", "fd78:1::2")):
        scanner.run("ip", "route", "add", net, "via", via)
    for net, via in (("10.78.1.0/24", "10.78.2.1"), ("fd78:1::/64", "fd78:2::1")):
        far.run("ip", "route", "add", net, "via", via)
    target.serve_tcp([22])
    far.serve_tcp([22])

    hosts = scan_json(
        instance,
        scanner,
        "-sS",
        "-p",
        "22,23",
        "10.78.0.2",
        "fd78::2",
        "10.78.2.2",
        "fd78:2::2",
        "10.78.0.9",
    )
    state = {h["address"]: (h["state"], h["mac"]) for h in hosts}
    want = link_mac(target, near.right_if)
    assert state == {
        "10.78.0.2": ("up", want),
        "fd78::2": ("up", want),
        "10.78.2.2": ("up", None),  # routed: not on our link, so no MAC (not the router's)
        "fd78:2::2": ("up", None),
        "10.78.0.9": ("down", None),  # nobody answered, not even ARP
    }
    # the connect scanner's traffic fills the table just the same
    (again,) = scan_json(instance, scanner, "-sT", "-p", "22", "10.78.0.2")
    assert again["mac"] == want
