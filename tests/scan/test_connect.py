"""The connect and SYN scanners against hosts in namespaces: a normal one, one that drops traffic to closed
ports, and one that loses a fifth of all packets. The open ports must always be exactly those
that listen."""

from __future__ import annotations

import json
import sys

import pytest

from tests.netns import Link, Namespaces, unavailable

OPEN = [22, 80, 443, 8443, 31337]
SCAN = r"""
import json, sys
from stockade.sensors.scan.connect import connect_scan
from stockade.sensors.scan.syn import syn_scan
scan = syn_scan if sys.argv[3] == "syn" else connect_scan
r = scan(sys.argv[1], range(1, int(sys.argv[2]) + 1))
print(json.dumps({"open": r.with_state("open"), "closed": len(r.with_state("closed")),
                  "filtered": len(r.with_state("filtered")), "tries": r.tries}))
"""


@pytest.fixture
def hosts(netns: Namespaces) -> Link:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("scanner"), netns.create("target")
    link = netns.link(
        scanner, target, ["10.77.0.1/24", "fd77::1/64"], ["10.77.0.2/24", "fd77::2/64"]
    )
    target.serve_tcp(OPEN)
    return link


@pytest.fixture(params=["connect", "syn"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def scan(link: Link, address: str, last: int, kind: str) -> dict[str, object]:
    r = link.left.run(sys.executable, "-c", SCAN, address, str(last), kind, timeout=300)
    return dict(json.loads(r.stdout))


def nft(link: Link, rules: str) -> None:
    link.right.run("nft", "-f", "-", input=rules)


def test_normal_host_v4_and_v6(hosts: Link, kind: str) -> None:
    for address in ("10.77.0.2", "fd77::2"):
        got = scan(hosts, address, 40000, kind)
        assert got["open"] == OPEN
        assert got["closed"] == 40000 - len(OPEN)
        assert got["filtered"] == 0


def test_host_dropping_closed_ports(hosts: Link, kind: str) -> None:
    ports = ", ".join(map(str, OPEN))
    nft(
        hosts,
        "table inet fw {\n chain inbound {\n type filter hook input priority 0;\n"
        f"  tcp dport != {{ {ports} }} drop\n }}\n}}\n",
    )
    got = scan(hosts, "10.77.0.2", 40000, kind)
    assert got["open"] == OPEN
    assert got["filtered"] == 40000 - len(OPEN)


def test_lossy_host_still_shows_every_open_port(hosts: Link, kind: str) -> None:
    nft(
        hosts,
        "table inet loss {\n chain inbound {\n type filter hook input priority 0;\n"
        "  numgen random mod 100 < 20 drop\n }\n}\n",
    )
    for _ in range(3):
        got = scan(hosts, "10.77.0.2", 32000, kind)
        assert got["open"] == OPEN


def test_host_limiting_resets(hosts: Link, kind: str) -> None:
    nft(
        hosts,
        "table inet rl {\n chain outbound {\n type filter hook output priority 0;\n"
        "  tcp flags rst limit rate over 200/second drop\n }\n}\n",
    )
    got = scan(hosts, "10.77.0.2", 32000, kind)
    assert got["open"] == OPEN
