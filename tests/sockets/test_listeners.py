"""Listener deltas and ignore rules (pure: no sockets)."""

from __future__ import annotations

import pytest

from stockade.detectors.sockets.listeners import IgnoreRule, Listener, compare, parse_ignores
from stockade.errors import StockadeError


def keyed(*items: Listener) -> dict[bytes, Listener]:
    return {x.key(): x for x in items}


SSHD = Listener("tcp", "0.0.0.0", 22, "sshd")
PG = Listener("tcp", "127.0.0.1", 5432, "postgres")


def test_no_change() -> None:
    assert compare(keyed(SSHD, PG), keyed(SSHD, PG)) == []


def test_new_and_gone() -> None:
    back = Listener("tcp", "0.0.0.0", 31337, "bash")
    deltas = compare(keyed(SSHD, PG), keyed(SSHD, back))
    assert [(d.kind, d.subject) for d in deltas] == [
        ("listener-new", "tcp/0.0.0.0:31337"),
        ("listener-gone", "tcp/127.0.0.1:5432"),
    ]
    assert "bash" in deltas[0].describe()


def test_owner_changed_is_one_delta() -> None:
    fake = Listener("tcp", "0.0.0.0", 22, "python3")
    (d,) = compare(keyed(SSHD), keyed(fake))
    assert (d.kind, d.old, d.new) == ("listener-owner-changed", SSHD, fake)
    assert "now owned by python3 (was sshd)" in d.describe()


def test_moved_from_loopback_to_public() -> None:
    public = Listener("tcp", "0.0.0.0", 5432, "postgres")
    v6 = Listener("tcp", "::", 5432, "postgres")
    deltas = compare(keyed(PG), keyed(PG, public, v6))
    assert sorted(d.kind for d in deltas) == ["listener-exposed", "listener-exposed"]
    assert deltas[0].old == PG
    # a program that already listened publicly is not 'exposed' by another address
    deltas = compare(keyed(PG, public), keyed(PG, public, v6))
    assert [d.kind for d in deltas] == ["listener-new"]


def test_pid_and_queues_are_not_part_of_the_key() -> None:
    assert SSHD.key() == Listener("tcp", "0.0.0.0", 22, "sshd").key()
    assert Listener.from_text(SSHD.text()) == SSHD


def test_ignore_rules() -> None:
    rules = parse_ignores(["udp:*:68", "program:chronyd", "tcp:[::1]:631", "tcp:22"])
    dhcp = Listener("udp", "0.0.0.0", 68, "dhclient")
    chrony = Listener("udp", "127.0.0.1", 323, "chronyd")
    cups = Listener("tcp", "::1", 631, "cupsd")
    web = Listener("tcp", "0.0.0.0", 80, "nginx")
    deltas = compare(keyed(), keyed(dhcp, chrony, cups, SSHD, web), rules)
    assert [d.subject for d in deltas] == ["tcp/0.0.0.0:80"]
    assert IgnoreRule.parse("*:10.0.0.1:*").matches(Listener("udp", "10.0.0.1", 9, "x"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("22", "write 'tcp:PORT'"),
        ("sctp:22", "protocol must be"),
        ("tcp:99999", "port must be"),
        ("tcp:nothost:22", "is not an address"),
        ("program:", "write 'tcp:PORT'"),
    ],
)
def test_bad_ignore_rules(text: str, why: str) -> None:
    with pytest.raises(StockadeError, match=rf"sockets.ignore\[0\]: .*{why}"):
        parse_ignores([text])
