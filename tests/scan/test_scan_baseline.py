"""Scan groups against their baselines, on namespace hosts: ``scan check|list|diff|accept``,
deltas confirmed by a second look, work units on worker processes, and the daemon's alerts
(exactly one a change; none under 20% packet loss)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import Instance, Result
from tests.daemonproc import Daemon
from tests.netns import Link, Namespaces, unavailable

TARGET = "10.78.0.2"
FACTS_SERVER = Path(__file__).with_name("facts_server.py")


@pytest.fixture
def lab(netns: Namespaces) -> Link:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("sbs"), netns.create("sbt")
    return netns.link(scanner, target, ["10.78.0.1/24"], [f"{TARGET}/24", "10.78.0.3/24"])


def configure(instance: Instance, **group: Any) -> None:
    g = {"name": "lab", "targets": [TARGET], "ports": "1-3000", "discovery": "none"}
    g.update(group)
    data = {
        "files": {"enabled": False},
        "logs": {"enabled": False},
        "sockets": {"enabled": False},
        "scan": {"workers": 2, "groups": [g]},
    }
    instance.config.write_text(tomli_w.dumps(data))


def cli(instance: Instance, lab: Link, *args: str) -> Result:
    argv = [sys.executable, "-m", "stockade", *instance.args("scan", *args)]
    r = lab.left.run(*argv, check=False, timeout=600)
    return Result(r.returncode, r.stdout, r.stderr)


def deltas(r: Result) -> list[tuple[str, str]]:
    assert r.rc in (0, 1), r.err
    return [
        (x["kind"], x["address"] + (f":{x['port']}" if x["port"] else "")) for x in r.json_lines()
    ]


def test_check_diff_list_accept(instance: Instance, lab: Link) -> None:
    configure(instance)
    web = lab.right.serve_tcp([22, 80])
    r = cli(instance, lab, "check")
    assert r.rc == 0, r.err
    assert "1 of 1 hosts up, 2 open ports" in r.out and "baseline version 1" in r.out
    assert deltas(cli(instance, lab, "check", "--json")) == []

    extra = lab.right.serve_tcp([2222])
    r = cli(instance, lab, "check", "--json")
    assert r.rc == 1 and deltas(r) == [("port-opened", f"{TARGET}:2222")]
    # the table form says the same, and the change is there until accepted
    r = cli(instance, lab, "check")
    assert r.rc == 1 and f"port {TARGET}:2222/tcp is now open" in r.out

    scans = cli(instance, lab, "list", "--json").json_lines()
    assert [s["id"] for s in scans] == [1, 2, 3, 4]
    assert [s["open_ports"] for s in scans] == [2, 2, 3, 3]
    assert deltas(cli(instance, lab, "diff", "1", "3", "--json")) == [
        ("port-opened", f"{TARGET}:2222")
    ]
    assert deltas(cli(instance, lab, "diff", "3", "1", "--json")) == [
        ("port-closed", f"{TARGET}:2222")
    ]
    assert deltas(cli(instance, lab, "diff", "--json")) == [("port-opened", f"{TARGET}:2222")]
    assert cli(instance, lab, "diff", "1", "2").out.strip() == "scan diff 1 2: no change"

    r = cli(instance, lab, "accept")
    assert r.rc == 0 and "baseline version 2 (1 host changes taken)" in r.out
    assert cli(instance, lab, "check").rc == 0

    extra.kill()
    extra.wait()
    web.kill()
    web.wait()
    lab.right.serve_tcp([22])
    r = cli(instance, lab, "check", "--json")
    assert r.rc == 1
    assert sorted(deltas(r)) == [("port-closed", f"{TARGET}:2222"), ("port-closed", f"{TARGET}:80")]
    # accept an older scan: the baseline goes back to it
    r = cli(instance, lab, "accept", "1", "--json")
    assert r.json_lines() == [{"group": "lab", "version": 3, "changes": 1}]


def test_accept_one_host(instance: Instance, lab: Link) -> None:
    """A change on two hosts; accepting one host's part leaves the other's change standing."""
    other = "10.78.0.3"
    configure(instance, targets=[TARGET, other], ports="20-30,2222")
    lab.right.serve_tcp([22])
    assert cli(instance, lab, "check").rc == 0
    lab.right.serve_tcp([2222])  # on every address of the target namespace: both hosts
    r = cli(instance, lab, "check", "--json")
    assert sorted(deltas(r)) == [
        ("port-opened", f"{TARGET}:2222"),
        ("port-opened", f"{other}:2222"),
    ]
    r = cli(instance, lab, "accept", "--host", TARGET, "--json")
    assert r.json_lines() == [{"group": "lab", "version": 2, "changes": 1}], r.err
    assert deltas(cli(instance, lab, "check", "--json")) == [("port-opened", f"{other}:2222")]
    for argv, message in [
        (("accept", "--host", "not-an-address"), "not an IP address"),
        (("accept", "--host", "10.78.0.77"), "neither scan"),
        (("check", "--host", TARGET), "--host goes with scan accept"),
    ]:
        r = cli(instance, lab, *argv)
        assert r.rc == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert deltas(cli(instance, lab, "check", "--json")) == [("port-opened", f"{other}:2222")]


def test_the_scan_baseline_is_signed(instance: Instance, lab: Link) -> None:
    """A port slipped into a group's stored baseline fails its check until accepted again."""
    configure(instance, ports="20-30,2222")
    lab.right.serve_tcp([22])
    assert cli(instance, lab, "check").rc == 0
    db = sqlite3.connect(instance.state / "stockade.db", isolation_level=None)
    try:
        db.execute("UPDATE baseline_entries SET data = replace(data, '22', '2222')")
    finally:
        db.close()
    r = cli(instance, lab, "check")
    assert r.rc == 2 and "baseline of scan group 'lab'" in r.err and "signature" in r.err, r.err
    assert cli(instance, lab, "accept").rc == 0
    assert cli(instance, lab, "check").rc == 0


def test_host_down_and_back(instance: Instance, lab: Link) -> None:
    configure(instance, targets=[TARGET, "10.78.0.3", "10.78.0.9"], ports="22,80")
    lab.right.serve_tcp([22])
    assert cli(instance, lab, "check").rc == 0
    # the target stops answering at all (its firewall drops everything)
    lab.right.run(
        "nft",
        "-f",
        "-",
        input="table inet t {\n chain c {\n type filter hook input priority 0;\n  ip daddr 10.78.0.3 drop\n }\n}\n",
    )
    r = cli(instance, lab, "check", "--json")
    assert deltas(r) == [("host-down", "10.78.0.3")]
    lab.right.run("nft", "flush", "ruleset")
    r = cli(instance, lab, "check", "--json")
    assert r.rc == 0 and deltas(r) == []


def test_host_that_moves_on_the_link_is_no_change(instance: Instance, lab: Link) -> None:
    configure(instance, targets=["10.78.0.2-6"], ports="22,80")
    lab.right.serve_tcp([22])
    assert cli(instance, lab, "check").rc == 0
    # the host at .3 gets another lease: .5, same interface, same MAC
    lab.right.run("ip", "addr", "del", "10.78.0.3/24", "dev", lab.right_if)
    lab.right.run("ip", "addr", "add", "10.78.0.5/24", "dev", lab.right_if)
    r = cli(instance, lab, "check", "--json")
    assert r.rc == 0 and deltas(r) == []
    # without MAC keys the same move is one host down and another up
    configure(instance, targets=["10.78.0.2-6"], ports="22,80", key_by_mac=False)
    r = cli(instance, lab, "check", "--json")
    assert sorted(deltas(r)) == [("host-down", "10.78.0.3"), ("host-up", "10.78.0.5")]


@pytest.mark.parametrize(
    "bad", ["", "--group nope", "diff 1 x", "diff 99 1", "accept x", "list extra"]
)
def test_bad_group_arguments(instance: Instance, bad: str) -> None:
    configure(instance)
    r = instance.run("scan", *(bad or "check --group nope").split())
    assert r.rc == 2 and r.err.strip().count("\n") == 0, r.err
    assert r.err.startswith("stockade: ")


def test_no_groups_configured(instance: Instance) -> None:
    instance.config.write_text("")
    r = instance.run("scan", "check")
    assert r.rc == 2 and "no scan group in the configuration" in r.err


def test_daemon_one_alert_per_change_and_none_under_packet_loss(
    instance: Instance, lab: Link
) -> None:
    configure(instance, schedule="1s", ports="1-1000", scan="connect")
    services = lab.right.serve_tcp([22, 80])
    d = Daemon(instance, namespace=lab.left)
    d.wait_for(r"scan lab: no baseline; took scan 1 \(1 of 1 hosts up\) as version 1", timeout=120)
    # 20% of the packets into the target are lost, both ways of looking at it
    lab.right.run(
        "nft",
        "-f",
        "-",
        input="table inet loss {\n chain inbound {\n type filter hook input priority 0;\n  numgen random mod 100 < 20 drop\n }\n}\n",
    )
    mark = d.mark()
    for n in range(2, 6):
        d.wait_for(rf"scan lab: scan {n}, ", timeout=180, after=mark)
    assert d.alerts() == []
    lab.right.run("nft", "flush", "ruleset")
    lab.right.serve_tcp([443])
    alert, _ = d.wait_alert(lambda a: a["kind"] == "port-opened", timeout=180)
    assert alert["subject"] == f"lab/{TARGET}:443/tcp" and alert["severity"] == "high"
    mark = d.mark()
    d.wait_for(r"scan lab: scan \d+, .* 1 changes", timeout=180, after=mark)
    d.wait_for(r"scan lab: scan \d+, .* 1 changes", timeout=180, after=d.mark())
    assert [a["kind"] for a in d.alerts()] == ["port-opened"]
    # a port of the baseline closes: one alert, one level lower; the unaccepted 443 is not
    # raised again
    services.kill()
    services.wait()
    lab.right.serve_tcp([22])
    alert, _ = d.wait_alert(lambda a: a["kind"] == "port-closed", timeout=180)
    assert alert["subject"] == f"lab/{TARGET}:80/tcp" and alert["severity"] == "medium"
    d.wait_for(r"scan lab: scan \d+, .* 2 changes", timeout=180, after=d.mark())
    assert [a["kind"] for a in d.alerts()] == ["port-opened", "port-closed"]
    assert d.stop() == 0


def _greeter(lab: Link, tmp_path: Path, text: bytes) -> subprocess.Popen[str]:
    cfg = tmp_path / f"greet-{text.hex()[:40]}.json"
    cfg.write_text(json.dumps([{"port": 21, "kind": "greet", "text": text.hex()}]))
    proc = lab.right.popen(sys.executable, str(FACTS_SERVER), str(cfg), stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_new_version_is_confirmed_as_version_changed(
    instance: Instance, lab: Link, tmp_path: Path
) -> None:
    configure(instance, ports="21")
    old = _greeter(lab, tmp_path, b"220 (vsFTPd 3.0.3)\r\n")
    assert cli(instance, lab, "check").rc == 0
    old.kill()
    old.wait()
    _greeter(lab, tmp_path, b"220 (vsFTPd 3.0.5)\r\n")
    r = cli(instance, lab, "check", "--json")
    assert r.rc == 1 and deltas(r) == [("version-changed", f"{TARGET}:21")]
    (delta,) = r.json_lines()
    assert (delta["old"], delta["new"]) == ("ftp vsftpd 3.0.3", "ftp vsftpd 3.0.5")
