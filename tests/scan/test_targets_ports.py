"""Target and port lists in nmap's syntax: what they expand to, and one-line errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.errors import StockadeError
from stockade.sensors.scan.ports import TOP100_TCP, parse_ports, parse_services
from stockade.sensors.scan.targets import expand, parse_spec, parse_target_file


def addrs(*texts: str, exclude: tuple[str, ...] = ()) -> list[str]:
    specs = [parse_spec(t) for t in texts]
    return [t.address for t in expand(specs, [parse_spec(e) for e in exclude])]


def test_addresses_networks_and_ranges() -> None:
    assert addrs("10.0.0.1", "::1") == ["10.0.0.1", "::1"]
    assert addrs("10.0.0.0/30") == ["10.0.0.1", "10.0.0.2"]  # no network/broadcast, as nmap
    assert addrs("10.0.0.7/32", "10.0.0.8/31") == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
    assert addrs("10.0.0.250-10.0.1.1") == [f"10.0.0.{i}" for i in range(250, 256)] + [
        "10.0.1.0",
        "10.0.1.1",
    ]
    assert addrs("10.0.0.1-3") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert addrs("10.0.1-2.1,5") == ["10.0.1.1", "10.0.1.5", "10.0.2.1", "10.0.2.5"]
    assert len(addrs("10.0.0.*")) == 256
    assert addrs("fd00::1-fd00::3") == ["fd00::1", "fd00::2", "fd00::3"]
    assert len(addrs("fd00::/126")) == 4


def test_exclusions_and_duplicates() -> None:
    got = addrs("10.0.0.0/29", "10.0.0.3", exclude=("10.0.0.2", "10.0.0.4/31"))
    assert got == ["10.0.0.1", "10.0.0.3", "10.0.0.6"]


def test_host_names_use_the_resolver() -> None:
    specs = [parse_spec("Web.Example.")]
    got = expand(specs, resolve=lambda n: {"web.example": ["192.0.2.7", "192.0.2.8"]}[n])
    assert [(t.address, t.name) for t in got] == [("192.0.2.7", "web.example")]
    with pytest.raises(StockadeError, match="does not resolve"):
        expand(specs, resolve=lambda n: [])


def test_target_file() -> None:
    specs = parse_target_file("# lab\n10.0.0.1 10.0.0.2  # two\n\nfd00::/127\n", "hosts.txt")
    assert [s.text for s in specs] == ["10.0.0.1", "10.0.0.2", "fd00::/127"]
    with pytest.raises(StockadeError, match=r"^hosts.txt:2: target '10.0.0.300-1'"):
        parse_target_file("10.0.0.1\n10.0.0.300-1\n", "hosts.txt")


@pytest.mark.parametrize(
    "text", ["", "10.0.0.0/33", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "999.1.1.1", "a b", "x/y"]
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(StockadeError) as e:
        parse_spec(text)
    assert "\n" not in str(e.value)


def test_too_many_addresses_is_refused() -> None:
    with pytest.raises(StockadeError, match="more than the limit"):
        expand([parse_spec("10.0.0.0/8")])


def test_ports() -> None:
    assert parse_ports("22,80,8000-8003").tcp == (22, 80, 8000, 8001, 8002, 8003)
    assert len(parse_ports("-").tcp) == 65535
    assert parse_ports("-3").tcp == (1, 2, 3)
    assert parse_ports("65534-").tcp == (65534, 65535)
    spec = parse_ports("T:22,80,U:53,161")
    assert (spec.tcp, spec.udp) == ((22, 80), (53, 161))
    assert parse_ports("53", default_proto="udp").udp == (53,)
    top = parse_ports("top100").tcp
    assert len(top) == 100 and 22 in top and 443 in top


def test_top_ports_from_a_services_table() -> None:
    table = "ssh\t22/tcp\t0.18\nhttp\t80/tcp\t0.48\nx\t9/udp\t0.9\n# c\nbad line\n"
    assert parse_services(table, "tcp", 1) == [80]
    assert parse_services(table, "tcp", 5) == [22, 80]
    assert len(TOP100_TCP) == 100


@pytest.mark.parametrize("text", ["", "22,", "x", "70000", "90-80", "top", "topx", "T:"])
def test_bad_ports(text: str) -> None:
    with pytest.raises(StockadeError, match=r"^-p: "):
        parse_ports(text)


@given(st.text(max_size=40))
def test_fuzz_targets(text: str) -> None:
    try:
        spec = parse_spec(text)
    except StockadeError as e:
        assert "\n" not in str(e)
    else:
        assert spec.size() >= 1


@given(st.text(alphabet="0123456789,-TU:top", max_size=30))
def test_fuzz_ports(text: str) -> None:
    try:
        spec = parse_ports(text)
    except StockadeError as e:
        assert str(e).startswith("-p: ")
    else:
        assert all(0 <= p <= 65535 for p in spec.tcp + spec.udp)
