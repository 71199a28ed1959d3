"""The allowlist: loopback always, ignoreip entries, this host's addresses, overlaps, reasons."""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
from collections.abc import Iterable

import pytest

from stockade.errors import ConfigError
from stockade.responders.allowlist import Allowlist, Resolver, read_host_addresses, resolve_name
from tests.netns import Namespaces


def build(*entries: str, host: Iterable[str] = (), resolve: Resolver = resolve_name) -> Allowlist:
    """An allowlist whose host addresses are ``host`` (an injected source)."""
    hosts = list(host)
    return Allowlist.from_entries(entries, host_addresses=lambda: hosts, resolve=resolve)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is loopback"),
        ("127.255.255.254", "127.255.255.254 is loopback"),
        ("::1", "::1 is loopback"),
        ("::ffff:127.0.0.1", "127.0.0.1 is loopback"),
        ("::ffff:127.9.9.9", "127.9.9.9 is loopback"),
        ("127.0.0.0/30", "127.0.0.0/30 is loopback"),
        ("0.0.0.0/0", "0.0.0.0/0 contains loopback 127.0.0.0/8"),
        ("::/0", "::/0 contains loopback 127.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0 contains loopback 127.0.0.0/8"),
        ("::/64", "::/64 contains loopback 127.0.0.0/8"),
    ],
)
def test_loopback_is_always_covered(target: str, reason: str) -> None:
    allowlist = Allowlist.from_entries([], ignoreself=False)
    assert allowlist.covers(target) == reason


def test_loopback_cannot_be_switched_off() -> None:
    allowlist = Allowlist([], ignoreself=False)
    assert allowlist.covers("127.0.0.1") == "127.0.0.1 is loopback"
    assert allowlist.covers("::1") == "::1 is loopback"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("10.0.0.5", "10.0.0.5 is in ignoreip 10.0.0.0/8"),
        ("10.255.255.255", "10.255.255.255 is in ignoreip 10.0.0.0/8"),
        ("10.1.0.0/16", "10.1.0.0/16 is in ignoreip 10.0.0.0/8"),
        ("8.0.0.0/6", "8.0.0.0/6 contains ignoreip 10.0.0.0/8"),
        ("198.51.100.7", "198.51.100.7 is in ignoreip 198.51.100.7"),
        ("198.51.100.0/24", "198.51.100.0/24 contains ignoreip 198.51.100.7"),
        ("2001:db8::5", "2001:db8::5 is in ignoreip 2001:db8::5"),
        ("2001:db8::/64", "2001:db8::/64 contains ignoreip 2001:db8::5"),
        ("2001:db8:77::1", "2001:db8:77::1 is in ignoreip 2001:db8:77::/48"),
        ("2001:db8:77:5::/64", "2001:db8:77:5::/64 is in ignoreip 2001:db8:77::/48"),
        ("::ffff:10.1.2.3", "10.1.2.3 is in ignoreip 10.0.0.0/8"),
        ("::ffff:198.51.100.7", "198.51.100.7 is in ignoreip 198.51.100.7"),
    ],
)
def test_ignoreip_covers_addresses_ranges_and_overlaps(target: str, reason: str) -> None:
    allowlist = build("10.0.0.0/8", "198.51.100.7", "2001:db8::5", "2001:db8:77::/48")
    assert allowlist.covers(target) == reason


@pytest.mark.parametrize(
    "target",
    ["11.0.0.1", "198.51.100.6", "198.51.100.8/29", "2001:db8::4", "2001:db8:1::/64", "::2"],
)
def test_neighbours_are_not_covered(target: str) -> None:
    allowlist = build("10.0.0.0/8", "198.51.100.7", "2001:db8::5")
    assert allowlist.covers(target) is None


def test_covers_takes_networks_addresses_and_text() -> None:
    allowlist = build("198.51.100.7")
    assert allowlist.covers(ipaddress.ip_network("198.51.100.7/32")) is not None
    assert allowlist.covers(ipaddress.ip_address("198.51.100.7")) is not None
    assert allowlist.covers("198.51.100.7/32") is not None


def test_an_ipv4_mapped_entry_protects_the_ipv4_address_and_back() -> None:
    allowlist = build("::ffff:192.0.2.44")
    assert allowlist.covers("192.0.2.44") == "192.0.2.44 is in ignoreip 192.0.2.44"
    assert allowlist.covers("::ffff:192.0.2.44") == "192.0.2.44 is in ignoreip 192.0.2.44"
    assert allowlist.covers("::ffff:192.0.2.0/120") == "192.0.2.0/24 contains ignoreip 192.0.2.44"


def test_several_entries_in_one_string_as_fail2ban_writes_them() -> None:
    allowlist = build("192.0.2.1 192.0.2.2,192.0.2.3  2001:db8::1")
    for target in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"):
        assert allowlist.covers(target) is not None
    assert allowlist.covers("192.0.2.4") is None


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "300.1.1.1", "10.0.0", "2001:db8::zz", "::1/129"])
def test_a_malformed_entry_is_a_config_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError, match="ignoreip entry") as err:
        build(bad)
    assert repr(bad) in str(err.value)
    assert "\n" not in str(err.value)


def test_host_names_resolve_once_at_load() -> None:
    calls: list[str] = []

    def resolve(name: str) -> list[str]:
        calls.append(name)
        return {"gw.example": ["192.0.2.10", "2001:db8::10"]}[name]

    allowlist = build("gw.example", resolve=resolve)
    assert calls == ["gw.example"]
    assert allowlist.covers("192.0.2.10") == "192.0.2.10 is in ignoreip gw.example (192.0.2.10)"
    assert allowlist.covers("2001:db8::/64") == (
        "2001:db8::/64 contains ignoreip gw.example (2001:db8::10)"
    )
    allowlist.refresh()
    allowlist.covers("192.0.2.11")
    assert calls == ["gw.example"]


def test_localhost_resolves_from_etc_hosts() -> None:
    allowlist = Allowlist.from_entries(["localhost"], ignoreself=False)
    labels = {entry.label for entry in allowlist.entries if entry.kind == "ignoreip"}
    assert "localhost (127.0.0.1)" in labels
    assert allowlist.unresolved == ()


def test_a_name_that_does_not_resolve_is_logged_and_protects_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def resolve(name: str) -> list[str]:
        raise OSError(f"cannot resolve {name}")

    with caplog.at_level(logging.WARNING):
        allowlist = build("gone.example", "192.0.2.1", resolve=resolve)
    assert allowlist.unresolved == ("gone.example",)
    assert "gone.example" in caplog.text
    assert allowlist.covers("192.0.2.1") is not None
    assert allowlist.covers("192.0.2.2") is None


def test_addresses_of_this_host_are_covered() -> None:
    host = ["192.0.2.7", "2001:db8:bb::1", "fe80::1%eth0", "::ffff:198.51.100.9"]
    allowlist = build(host=host)
    assert allowlist.covers("192.0.2.7") == "192.0.2.7 is an address of this host"
    assert allowlist.covers("::ffff:192.0.2.7") == "192.0.2.7 is an address of this host"
    assert allowlist.covers("192.0.2.0/24") == (
        "192.0.2.0/24 contains 192.0.2.7, an address of this host"
    )
    assert allowlist.covers("2001:db8:bb::/64") == (
        "2001:db8:bb::/64 contains 2001:db8:bb::1, an address of this host"
    )
    assert allowlist.covers("fe80::1") == "fe80::1 is an address of this host"
    assert allowlist.covers("198.51.100.9") == "198.51.100.9 is an address of this host"
    assert allowlist.covers("192.0.2.8") is None


def test_ignoreself_off_leaves_host_addresses_unprotected_and_unread() -> None:
    def source() -> list[str]:
        raise AssertionError("host addresses were read")

    allowlist = Allowlist.from_entries([], ignoreself=False, host_addresses=source)
    allowlist.refresh()
    assert allowlist.covers("192.0.2.7") is None


def test_refresh_reads_host_addresses_again() -> None:
    current = ["192.0.2.7"]
    allowlist = Allowlist.from_entries([], host_addresses=lambda: list(current))
    assert allowlist.covers("192.0.2.8") is None
    current[:] = ["192.0.2.8"]
    assert allowlist.covers("192.0.2.8") is None  # not before refresh()
    allowlist.refresh()
    assert allowlist.covers("192.0.2.8") == "192.0.2.8 is an address of this host"
    assert allowlist.covers("192.0.2.7") is None


def test_the_reasons_come_in_order_loopback_ignoreip_self() -> None:
    allowlist = build("127.0.0.1", "192.0.2.7", host=["127.0.0.1", "192.0.2.7"])
    assert allowlist.covers("127.0.0.1") == "127.0.0.1 is loopback"
    assert allowlist.covers("192.0.2.7") == "192.0.2.7 is in ignoreip 192.0.2.7"


def test_the_real_host_address_source_sees_loopback() -> None:
    assert "127.0.0.1" in read_host_addresses()


_IN_NAMESPACE = r"""
import json, sys
from stockade.responders.allowlist import Allowlist
allowlist = Allowlist.from_entries([])  # the real psutil source: this namespace's addresses
targets = sys.argv[1:]
print(json.dumps({t: allowlist.covers(t) for t in targets}), flush=True)
sys.stdin.readline()  # the test adds an address meanwhile
allowlist.refresh()
print(json.dumps({t: allowlist.covers(t) for t in targets}), flush=True)
"""


def test_the_real_source_reads_the_addresses_of_the_namespace_it_runs_in(
    netns: Namespaces,
) -> None:
    host, peer = netns.create("host"), netns.create("peer")
    link = netns.link(host, peer, ["10.77.0.1/24", "fd77::1/64"], ["10.77.0.2/24", "fd77::2/64"])
    targets = ["10.77.0.1", "fd77::1", "::ffff:10.77.0.1", "10.77.0.0/24", "10.77.0.2", "10.77.0.9"]
    pipe = subprocess.PIPE
    proc = host.popen(sys.executable, "-c", _IN_NAMESPACE, *targets, stdin=pipe, stdout=pipe)
    assert proc.stdout is not None and proc.stdin is not None
    before = json.loads(proc.stdout.readline())
    assert before == {
        "10.77.0.1": "10.77.0.1 is an address of this host",
        "fd77::1": "fd77::1 is an address of this host",
        "::ffff:10.77.0.1": "10.77.0.1 is an address of this host",
        "10.77.0.0/24": "10.77.0.0/24 contains 10.77.0.1, an address of this host",
        "10.77.0.2": None,  # the peer's address: another host
        "10.77.0.9": None,
    }
    host.run("ip", "addr", "add", "10.77.0.9/24", "dev", link.left_if)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    after = json.loads(proc.stdout.readline())
    assert after["10.77.0.9"] == "10.77.0.9 is an address of this host"
    assert after["10.77.0.2"] is None
    proc.wait(timeout=30)
