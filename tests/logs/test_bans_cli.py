"""``stockade bans``: manual bans and unbans reach a real nftables (in a namespace), are kept in
the store, and the allowlist refuses what it covers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import Instance
from tests.logs.test_daemon_logs import wait_bans
from tests.netns import Namespace, Namespaces, unavailable


def configure(instance: Instance, ns: Namespace | None, **logs: Any) -> None:
    data: dict[str, Any] = {"files": {"enabled": False}, "logs": {"jails": [], **logs}}
    if ns is not None:
        data["logs"]["nft_command"] = ns.nft
    else:
        data["logs"]["responder"] = "dry-run"
    instance.config.write_text(tomli_w.dumps(data))


def kernel(ns: Namespace) -> str:
    return ns.run("nft", "list", "ruleset", check=False).stdout


@pytest.fixture
def ns(netns: Namespaces) -> Namespace:
    why = unavailable()
    if why:
        pytest.skip(why)
    return netns.create("bans")


def test_ban_list_unban_flush(instance: Instance, ns: Namespace) -> None:
    configure(instance, ns, allowlist=["198.51.100.0/24"])
    r = instance.run("bans", "ban", "192.0.2.7", "--time", "1h", "--reason", "seen scanning")
    assert r.rc == 0, r.err
    assert "192.0.2.7" in kernel(ns)
    r = instance.run("bans", "ban", "2001:db8::5", "--time", "permanent", "--json")
    assert json.loads(r.out)["until"] is None
    listed = instance.run("bans", "list", "--json").json_lines()
    assert {b["address"] for b in listed} == {"192.0.2.7", "2001:db8::5"}
    assert listed[0]["reason"] == "seen scanning" and listed[0]["source"] == "manual"
    r = instance.run("bans", "unban", "192.0.2.7")
    assert r.rc == 0 and "lifted 1" in r.out
    assert "192.0.2.7" not in kernel(ns)
    assert [b["address"] for b in instance.run("bans", "list", "--json").json_lines()] == [
        "2001:db8::5"
    ]
    history = instance.run("bans", "list", "--all", "--json").json_lines()
    assert [b["lifted_by"] for b in history] == ["manual", None]
    r = instance.run("bans", "flush")
    assert r.rc == 0 and "table inet stockade" not in kernel(ns)
    assert instance.run("bans", "list", "--json").out == ""


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "198.51.100.9", "198.51.100.0/25"])
def test_allowlist_refuses_manual_bans(instance: Instance, ns: Namespace, address: str) -> None:
    configure(instance, ns, allowlist=["198.51.100.0/24"])
    r = instance.run("bans", "ban", address)
    assert r.rc == 2 and r.one_line_error and "refusing to ban" in r.err
    assert address.split("/", maxsplit=1)[0] not in kernel(ns)
    assert instance.run("bans", "list", "--all", "--json").out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["ban", "not-an-address"],
        ["ban", "192.0.2.1", "--time", "soon"],
        ["ban", "192.0.2.1", "--time", "0s"],
        ["unban", "300.1.1.1"],
    ],
)
def test_bad_input(instance: Instance, args: list[str]) -> None:
    configure(instance, None)
    r = instance.cli("bans", *args)
    assert r.rc == 2 and r.one_line_error, r.err


def test_manual_unban_is_not_undone_by_a_restart(
    instance: Instance, tmp_path: Path, daemon
) -> None:
    configure(instance, None)
    assert instance.run("bans", "ban", "192.0.2.20", "--time", "1h").rc == 0
    assert instance.run("bans", "ban", "192.0.2.21", "--time", "1h").rc == 0
    assert instance.run("bans", "unban", "192.0.2.20").rc == 0
    d = daemon(instance)
    d.wait_for("restored 1 active ban")
    assert wait_bans(instance, 2)  # both records kept, one lifted
    assert [b["address"] for b in instance.run("bans", "list", "--json").json_lines()] == [
        "192.0.2.21"
    ]
    assert d.stop() == 0
