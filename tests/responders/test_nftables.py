"""The nftables responder, against real nftables inside namespaces the tests make.

The world: a server namespace listening on TCP 22 and 80, and two client namespaces, A (the one
that gets banned) and B (an innocent), each wired to the server by its own veth pair with IPv4
and IPv6 addresses. Every nft command runs inside the server namespace.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockade.responders.allowlist import show
from stockade.responders.base import Ban, ResponderError
from stockade.responders.nftables import (
    Element,
    Elements,
    NftablesResponder,
    first_error,
    jail_names,
    parse_state,
    plan,
    port_match,
    timeout_text,
)
from tests.netns import Namespace, Namespaces

SRV4_A, SRV6_A, A4, A6, A6_OTHER = "10.201.1.1", "fd01::1", "10.201.1.2", "fd01::2", "fd01::3"
SRV4_B, SRV6_B, B4, B6 = "10.201.2.1", "fd02::1", "10.201.2.2", "fd02::2"


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


@dataclass
class World:
    server: Namespace
    a: Namespace
    b: Namespace
    responder: NftablesResponder

    def a_reaches(self, port: int, version: int = 4, source: str | None = None) -> bool:
        """A connects from ``source`` (default: A4 or A6, not the extra A6_OTHER)."""
        source = source or (A4 if version == 4 else A6)
        return self.a.can_connect(SRV4_A if version == 4 else SRV6_A, port, source=source)

    def b_reaches(self, port: int, version: int = 4) -> bool:
        return self.b.can_connect(SRV4_B if version == 4 else SRV6_B, port)

    def nft(self, *args: str) -> str:
        return self.server.run("nft", *args).stdout

    def elements(self) -> dict[str, float | None]:
        """Banned network → seconds left, from what the kernel holds."""
        return {show(n): left for n, _, left in self.responder.list_active()}


@pytest.fixture
def world(netns: Namespaces) -> World:
    if shutil.which("nft") is None:
        pytest.skip("needs nftables (`nft`)")
    server, a, b = netns.create("srv"), netns.create("a"), netns.create("b")
    netns.link(
        server, a, [f"{SRV4_A}/24", f"{SRV6_A}/64"], [f"{A4}/24", f"{A6}/64", f"{A6_OTHER}/64"]
    )
    netns.link(server, b, [f"{SRV4_B}/24", f"{SRV6_B}/64"], [f"{B4}/24", f"{B6}/64"])
    server.serve_tcp([22, 80])
    return World(server, a, b, NftablesResponder(server.nft))


def about(seconds: float) -> object:
    """Seconds left, give or take the time the test's connection checks took."""
    return pytest.approx(seconds, abs=20)


def eventually(check: Callable[[], bool], limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


# --- real traffic ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
def test_a_ban_drops_the_banned_namespace_and_no_other(world: World, version: int) -> None:
    assert world.a_reaches(80, version) and world.b_reaches(80, version)
    banned = A4 if version == 4 else A6
    world.responder.apply([Ban(net(banned), "sshd", until=time.time() + 600)], now=time.time())
    assert not world.a_reaches(80, version)
    assert not world.a_reaches(22, version)
    assert world.b_reaches(80, version) and world.b_reaches(22, version)
    other = 6 if version == 4 else 4
    assert world.a_reaches(80, other)  # only the banned address, not the whole host


@pytest.mark.parametrize("version", [4, 6])
def test_a_jail_with_ports_bans_only_those_ports(world: World, version: int) -> None:
    banned = A4 if version == 4 else A6
    now = time.time()
    world.responder.apply([Ban(net(banned), "sshd", until=now + 600, ports=("ssh",))], now=now)
    assert not world.a_reaches(22, version)
    assert world.a_reaches(80, version)
    assert world.b_reaches(22, version)
    chain = world.nft("list", "chain", "inet", "stockade", "jail-sshd")
    assert "tcp dport 22 drop" in chain


def test_all_ports_written_the_fail2ban_way_bans_every_port(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now + 600, ports=("0:65535",))], now=now)
    assert not world.a_reaches(22) and not world.a_reaches(80)
    assert world.elements() == {A4: about(600)}
    assert "jail-sshd" not in world.nft("list", "table", "inet", "stockade")


def test_ports_in_fail2ban_notation_become_one_rule(world: World) -> None:
    now = time.time()
    ports = ("http,https", "8000:8100", "9000-9001")
    world.responder.apply([Ban(net(A4), "web", until=now + 600, ports=ports)], now=now)
    chain = world.nft("list", "chain", "inet", "stockade", "jail-web")
    assert "ip saddr @web4 tcp dport { 80, 443, 8000-8100, 9000-9001 } drop" in chain
    assert "ip6 saddr @web6 tcp dport { 80, 443, 8000-8100, 9000-9001 } drop" in chain
    world.responder.apply([Ban(net(B4), "web", until=now + 600, ports=ports)], now=now)
    assert world.nft("list", "chain", "inet", "stockade", "jail-web").count("drop") == 2


def test_a_64_ban_blocks_every_address_in_it(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net("fd01::/64"), "sshd", until=now + 600)], now=now)
    assert not world.a_reaches(80, 6, source=A6)
    assert not world.a_reaches(80, 6, source=A6_OTHER)
    assert world.b_reaches(80, 6)
    assert world.elements() == {"fd01::/64": about(600)}


def test_an_ipv4_mapped_ban_lands_in_the_ipv4_set(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(f"::ffff:{A4}/128"), "sshd", until=now + 600)], now=now)
    assert not world.a_reaches(80)
    assert world.elements() == {A4: about(600)}


def test_remove_lifts_a_ban_and_tolerates_one_not_there(world: World) -> None:
    now = time.time()
    ban = Ban(net(A4), "sshd", until=now + 600)
    world.responder.apply([ban], now=now)
    assert not world.a_reaches(80)
    world.responder.remove([ban])
    assert world.a_reaches(80)
    world.responder.remove([ban, Ban(net("192.0.2.1/32"), "sshd")])  # neither is there
    assert world.elements() == {}


# --- kernel timeouts -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_ban_expires_in_the_kernel_by_itself(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now + 2)], now=now)
    assert A4 in world.elements()
    assert not world.a_reaches(80)
    del world.responder  # nothing of stockade runs any more: the kernel alone ends the ban
    assert eventually(lambda: A4 not in world.nft("list", "set", "inet", "stockade", "ban4"))
    assert world.a_reaches(80)


def test_rebanning_updates_the_expiry(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now + 30)], now=now)
    assert world.elements()[A4] == about(30)
    world.responder.apply([Ban(net(A4), "sshd", until=now + 3600)], now=now)
    assert world.elements()[A4] == about(3600)
    world.responder.apply([Ban(net(A4), "sshd", until=None)], now=now)
    assert world.elements()[A4] is None
    world.responder.apply([Ban(net(A4), "sshd", until=now + 100)], now=now)
    assert world.elements()[A4] == about(100)
    assert not world.a_reaches(80)


def test_expired_bans_are_not_applied(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now)], now=now)
    assert world.elements() == {}
    assert world.a_reaches(80)


# --- one transaction -------------------------------------------------------------------------


def counting_nft(tmp_path: Path, namespace: Namespace) -> tuple[list[str], Path]:
    """An nft wrapper that logs each invocation, then runs nft in the namespace."""
    log = tmp_path / "nft-calls"
    wrapper = tmp_path / "nft"
    wrapper.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"os.execvp('ip', ['ip', 'netns', 'exec', {namespace.name!r}, 'nft', *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    return [str(wrapper)], log


def thousand_bans(now: float) -> list[Ban]:
    first = int(ipaddress.ip_address("10.202.0.0"))
    return [
        Ban(net(str(ipaddress.ip_address(first + 3 * n))), "sshd", until=now + 600)
        for n in range(1000)
    ]


def test_a_thousand_bans_are_one_nft_transaction(world: World, tmp_path: Path) -> None:
    nft, log = counting_nft(tmp_path, world.server)
    responder = NftablesResponder(nft)
    now = time.time()
    responder.apply([*thousand_bans(now), Ban(net(A4), "sshd", until=now + 600)], now=now)
    assert log.read_text().splitlines() == ["-f -"]
    assert len(responder.list_active()) == 1001
    assert not world.a_reaches(80) and world.b_reaches(80)


def test_a_batch_applies_all_or_nothing(world: World) -> None:
    # the jail's set is there without the flags stockade declares: the kernel refuses that
    # one command ("File exists"), after nft has sent the whole batch
    world.server.run("nft", "add table inet stockade")
    world.server.run("nft", "add set inet stockade sshd4 { type ipv4_addr; }")
    now = time.time()
    bad = Ban(net(B4), "sshd", until=now + 600, ports=("22",))
    with pytest.raises(ResponderError) as err:
        world.responder.apply(
            [*thousand_bans(now), Ban(net(A4), "x", until=now + 600), bad], now=now
        )
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("nftables: cannot apply 1002 ban(s) (table inet stockade): ")
    assert "File exists" in message and "sshd4" in message
    assert "ban4" not in world.nft("list", "table", "inet", "stockade")  # not even the sets
    assert world.a_reaches(80)


def test_a_batch_that_overlaps_what_is_there_is_resolved(world: World, tmp_path: Path) -> None:
    nft, log = counting_nft(tmp_path, world.server)
    responder = NftablesResponder(nft)
    now = time.time()
    responder.apply([Ban(net(A6), "sshd", until=now + 3600)], now=now)
    responder.apply([Ban(net("fd01::/64"), "recidive", until=now + 60)], now=now)
    assert log.read_text().splitlines() == [
        "-f -",  # the /128
        "-f -",  # the /64 as is: refused, it overlaps the /128
        "-j list table inet stockade",
        "-f -",  # the /64 around the /128
    ]
    held = responder.list_active()
    assert (net(A6), "sshd", about(3600)) in held
    assert sum(n.num_addresses for n, _, _ in held) == 2**64
    assert all(left == about(60) for n, _, left in held if n != net(A6))
    assert not world.a_reaches(80, 6, source=A6)
    assert not world.a_reaches(80, 6, source=A6_OTHER)


def test_a_longer_narrower_ban_splits_a_wider_one_in_the_kernel(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net("fd01::/64"), "recidive", until=now + 60)], now=now)
    world.responder.apply([Ban(net(A6), "sshd", until=now + 3600)], now=now)
    held = world.responder.list_active()
    assert (net(A6), "sshd", about(3600)) in held
    assert sum(n.num_addresses for n, _, _ in held) == 2**64
    assert not world.a_reaches(80, 6, source=A6_OTHER)


def test_a_wider_longer_ban_swallows_narrower_ones_in_the_kernel(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net(A6), "sshd", until=now + 60)], now=now)
    world.responder.apply([Ban(net(A6_OTHER), "sshd", until=now + 60)], now=now)
    world.responder.apply([Ban(net("fd01::/64"), "recidive", until=None)], now=now)
    assert world.responder.list_active() == [(net("fd01::/64"), "recidive", None)]


def test_remove_lifts_exactly_the_networks_named(world: World) -> None:
    now = time.time()
    world.responder.apply([Ban(net("fd01::/64"), "recidive", until=now + 600)], now=now)
    world.responder.remove([Ban(net(A6), "sshd")])  # inside the /64, but another ban
    assert world.elements() == {"fd01::/64": about(600)}
    world.responder.remove([Ban(net(A6), "sshd"), Ban(net("fd01::/64"), "recidive")])
    assert world.elements() == {}
    assert world.a_reaches(80, 6)


# --- coexistence and flush -------------------------------------------------------------------

OTHER = """
table ip other {
    chain input {
        type filter hook input priority filter; policy accept;
        ip saddr 10.201.2.2 tcp dport 22 counter drop
        tcp dport 80 counter accept
    }
}
"""


def test_other_tables_coexist_and_flush_leaves_them(world: World) -> None:
    world.server.run("nft", "-f", "-", input=OTHER)
    assert not world.b_reaches(22) and world.b_reaches(80)  # the host's own rule works

    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now + 600)], now=now)
    assert not world.a_reaches(80) and not world.a_reaches(22)
    assert not world.b_reaches(22) and world.b_reaches(80)  # both rulesets act

    world.responder.flush()
    assert "stockade" not in world.nft("list", "tables")
    assert world.a_reaches(80)
    assert not world.b_reaches(22) and world.b_reaches(80)
    other = json.loads(world.nft("-j", "list", "table", "ip", "other"))["nftables"]
    rules = [item["rule"] for item in other if "rule" in item]
    assert len(rules) == 2
    world.responder.flush()  # no table: no error


def test_nothing_outside_stockades_table_changes(world: World) -> None:
    world.server.run("nft", "-f", "-", input=OTHER)
    before = world.nft("list", "table", "ip", "other")
    now = time.time()
    world.responder.apply([Ban(net(A4), "sshd", until=now + 600, ports=("ssh",))], now=now)
    world.responder.apply([Ban(net(A6), "web", until=now + 600)], now=now)
    world.responder.remove([Ban(net(A6), "web")])
    assert world.nft("list", "table", "ip", "other") == before
    assert world.nft("list", "tables").split() == [
        "table",
        "ip",
        "other",
        "table",
        "inet",
        "stockade",
    ]


def test_a_table_name_of_ones_own(world: World) -> None:
    responder = NftablesResponder(world.server.nft, table="guard")
    now = time.time()
    responder.apply([Ban(net(A4), "sshd", until=now + 600)], now=now)
    assert "table inet guard" in world.nft("list", "tables")
    responder.flush()
    assert world.nft("list", "tables").strip() == ""


# --- list_active -----------------------------------------------------------------------------


def test_list_active_reports_network_jail_and_time_left(world: World) -> None:
    now = time.time()
    world.responder.apply(
        [
            Ban(net(A4), "sshd", until=now + 600, ports=("ssh",)),
            Ban(net("fd01::/64"), "recidive", until=None),
            Ban(net(B4), "nginx-http-auth", until=now + 60),
        ],
        now=now,
    )
    assert world.responder.list_active() == [
        (net(A4), "sshd", about(600)),
        (net(B4), "nginx-http-auth", about(60)),
        (net("fd01::/64"), "recidive", None),
    ]


def test_list_active_with_no_table_is_empty(world: World) -> None:
    assert world.responder.list_active() == []


# --- errors ----------------------------------------------------------------------------------


def test_a_missing_nft_is_one_clear_line() -> None:
    responder = NftablesResponder(["/nonexistent/nft"])
    with pytest.raises(ResponderError) as err:
        responder.apply([Ban(net("192.0.2.1/32"), "sshd")], now=time.time())
    assert str(err.value) == (
        "nftables: cannot apply 1 ban(s) (table inet stockade): "
        "'/nonexistent/nft' not found (install nftables)"
    )


def test_bad_ports_reject_that_ban_only(world: World) -> None:
    now = time.time()
    bans = [
        Ban(net(A4), "sshd", until=now + 600),
        Ban(net(B4), "web", until=now + 600, ports=("no-such-service",)),
    ]
    with pytest.raises(
        ResponderError,
        match=r"1 ban.* not applied; the first: 10\.201\.2\.2 for jail web: unknown port",
    ):
        world.responder.apply(bans, now=now)
    assert world.elements() == {A4: about(600)}


def test_a_table_name_nft_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError, match="table name"):
        NftablesResponder(table="a b")


# --- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "protocol", "expected"),
    [
        (None, "tcp", None),
        (("ssh",), "tcp", "tcp dport { 22 }"),
        (("22",), "udp", "udp dport { 22 }"),
        (("http,https",), "tcp", "tcp dport { 80, 443 }"),
        (("8000:8100", "8050-8200", "22"), "tcp", "tcp dport { 22, 8000-8200 }"),
        (("0:65535",), "tcp", None),
        (("1:65535",), "tcp", None),
        (("0-1000", "1001:65535"), "tcp", None),
        (("domain",), "all", "meta l4proto { tcp, udp } th dport { 53 }"),
    ],
)
def test_port_match(ports: tuple[str, ...] | None, protocol: str, expected: str | None) -> None:
    assert port_match(ports, protocol) == expected


@pytest.mark.parametrize(
    ("ports", "protocol", "match"),
    [
        (("70000",), "tcp", "out of range"),
        (("90:80",), "tcp", "backwards"),
        (("nope",), "tcp", "unknown port 'nope'"),
        ((",",), "tcp", "no ports"),
        (("22",), "icmp", "protocol 'icmp'"),
    ],
)
def test_bad_ports(ports: tuple[str, ...], protocol: str, match: str) -> None:
    with pytest.raises(ResponderError, match=match):
        port_match(ports, protocol)


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (0.2, "1s"),
        (-5, "1s"),
        (599.01, "600s"),
        (86400, "1d0s"),
        (10**9, "11574d6400s"),
        (10**12, "36500d0s"),
    ],
)
def test_timeout_text(left: float, text: str) -> None:
    assert timeout_text(1000.0 + left, 1000.0) == text


@pytest.mark.parametrize(
    ("jail", "names"),
    [
        ("sshd", ("sshd4", "sshd6", "jail-sshd")),
        ("nginx-http-auth", ("nginx-http-auth4", "nginx-http-auth6", "jail-nginx-http-auth")),
    ],
)
def test_jail_names(jail: str, names: tuple[str, str, str]) -> None:
    assert jail_names(jail) == names


@pytest.mark.parametrize("jail", ["ban", "ip", "a b", "1st", "x;drop", "é", "j" * 80])
def test_jail_names_nft_could_misread_are_rewritten(jail: str) -> None:
    set4, set6, chain = jail_names(jail)
    assert set4.startswith("j_") and set4.endswith("4") and set6.endswith("6")
    assert chain == f"jail-{set4[:-1]}"
    assert set4.replace("_", "").replace("-", "")[:-1].isalnum()
    assert jail_names(jail + "x") != (set4, set6, chain)


def test_plan_skips_expired_and_routes_by_family_and_ports() -> None:
    now = 1000.0
    todo = plan(
        [
            Ban(net("192.0.2.1/32"), "a", until=now),
            Ban(net("192.0.2.2/32"), "a", until=now + 1),
            Ban(net("2001:db8::/64"), "a", until=None),
            Ban(net("::ffff:192.0.2.3/128"), "b", until=None, ports=("22",)),
        ],
        now=now,
    )
    assert [(p.set, str(p.network)) for p in todo.placements] == [
        ("ban4", "192.0.2.2/32"),
        ("ban6", "2001:db8::/64"),
        ("b4", "192.0.2.3/32"),
    ]
    assert dict(todo.jails) == {"b": "tcp dport { 22 }"}


def test_elements_never_overlap_and_keep_each_address_longest_ban() -> None:
    short, long_, ever = Element(100.0, "s"), Element(900.0, "l"), Element(None, "e")
    elements = Elements()
    elements.insert(net("2001:db8::1/128"), long_)
    elements.insert(net("2001:db8::/64"), short)  # the /64 around the longer /128
    assert elements.items[net("2001:db8::1/128")] == long_
    assert sum(n.num_addresses for n in elements.items) == 2**64
    elements.insert(net("2001:db8::/64"), ever)  # swallows everything
    assert elements.items == {net("2001:db8::/64"): ever}
    elements.insert(net("2001:db8::5/128"), long_)  # already covered for longer
    assert elements.items == {net("2001:db8::/64"): ever}


def test_a_longer_narrower_ban_splits_a_wider_one() -> None:
    elements = Elements({net("10.0.0.0/24"): Element(100.0)})
    elements.insert(net("10.0.0.7/32"), Element(500.0))
    assert elements.items[net("10.0.0.7/32")] == Element(500.0)
    assert sum(n.num_addresses for n in elements.items) == 256
    assert all(el == Element(100.0) for n, el in elements.items.items() if n != net("10.0.0.7/32"))
    nets = sorted(elements.items)
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(nets))


def test_an_exact_reban_takes_the_new_expiry() -> None:
    elements = Elements({net("10.0.0.7/32"): Element(500.0)})
    elements.insert(net("10.0.0.7/32"), Element(100.0))
    assert elements.items == {net("10.0.0.7/32"): Element(100.0)}


def test_parse_state_reads_every_element_form() -> None:
    listing = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6"}},
                {"table": {"family": "inet", "name": "stockade"}},
                {
                    "set": {
                        "name": "ban4",
                        "elem": [
                            "192.0.2.1",
                            {
                                "elem": {
                                    "val": "192.0.2.2",
                                    "timeout": 600,
                                    "expires": 599,
                                    "comment": "sshd",
                                }
                            },
                            {"prefix": {"addr": "198.51.100.0", "len": 24}},
                            {"range": ["203.0.113.0", "203.0.113.5"]},
                        ],
                    }
                },
                {"set": {"name": "web6"}},
            ]
        }
    )
    state = parse_state(listing, now=1000.0)
    assert state["ban4"][net("192.0.2.1/32")] == Element(None, "")
    assert state["ban4"][net("192.0.2.2/32")] == Element(1599.0, "sshd")
    assert state["ban4"][net("198.51.100.0/24")] == Element(None, "")
    assert net("203.0.113.4/31") in state["ban4"]
    assert state["web6"] == {}


def test_first_error_points_at_the_culprit() -> None:
    stderr = (
        "/dev/stdin:7:34-44: Error: interval overlaps with an existing one\n"
        "add element inet stockade ban6 { 2001:db8::1 }\n"
        "                                 ^^^^^^^^^^^\n"
    )
    assert first_error(stderr, 1) == (
        "interval overlaps with an existing one: '2001:db8::1' in `add element inet stockade ban6 …`"
    )
    assert first_error("Error: No such file or directory\n", 1) == "No such file or directory"
    assert first_error('Cannot open network namespace "x": No such file\n', 1) == (
        'Cannot open network namespace "x": No such file'
    )
    assert first_error("", 2) == "nft exited with status 2"
