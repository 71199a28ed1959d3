"""The listener baseline through the CLI and the daemon, with real listeners in a namespace."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tomli_w

from stockade.store import SqliteStore
from tests.conftest import Instance
from tests.daemonproc import Daemon
from tests.netns import Namespace, Namespaces, unavailable

LISTEN = r"""
import ctypes, socket, sys, time
if len(sys.argv) > 3:  # another program name (comm), as a replaced binary would have
    ctypes.CDLL(None).prctl(15, sys.argv[3].encode(), 0, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print("ready", flush=True)
time.sleep(600)
"""


def configure(instance: Instance, **sockets: Any) -> None:
    data = {"files": {"enabled": False}, "logs": {"enabled": False}, "sockets": sockets}
    instance.config.write_text(tomli_w.dumps(data))


@pytest.fixture
def ns(netns: Namespaces) -> Iterator[Namespace]:
    why = unavailable()
    if why:
        pytest.skip(why)
    n = netns.create("lst")
    n.run("ip", "link", "set", "lo", "up")
    n.run("ip", "addr", "add", "10.9.0.1/24", "dev", "lo")
    yield n


def listen(ns: Namespace, address: str, port: int, name: str = "") -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", LISTEN, address, str(port)] + ([name] if name else [])
    proc = ns.popen(*argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def check(instance: Instance, ns: Namespace) -> tuple[int, list[dict[str, Any]]]:
    r = instance.cli("sockets", "check", "--netns", ns.name, "--json")
    assert r.rc in (0, 1), r.err
    return r.rc, [json.loads(x) for x in r.out.splitlines()]


def test_check_reports_each_kind_of_change(instance: Instance, ns: Namespace) -> None:
    configure(instance)
    r = instance.cli("sockets", "check", "--netns", ns.name)
    assert r.rc == 2 and "run `stockade sockets accept`" in r.err
    web = listen(ns, "127.0.0.1", 8080)
    ssh = listen(ns, "0.0.0.0", 2222)
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    assert check(instance, ns) == (0, [])

    # a backdoor appears; the loopback-only service is also opened to the network
    back = listen(ns, "0.0.0.0", 31337)
    public = listen(ns, "10.9.0.1", 8080)
    rc, deltas = check(instance, ns)
    assert rc == 1
    assert sorted((d["kind"], d["subject"]) for d in deltas) == [
        ("listener-exposed", "tcp/10.9.0.1:8080"),
        ("listener-new", "tcp/0.0.0.0:31337"),
    ]
    # the same port held by another program, and a listener gone
    ns.stop_processes()
    listen(ns, "0.0.0.0", 2222, name="not-sshd")
    del web, ssh, back, public
    rc, deltas = check(instance, ns)
    kinds = sorted((d["kind"], d["subject"]) for d in deltas)
    assert ("listener-owner-changed", "tcp/0.0.0.0:2222") in kinds
    assert ("listener-gone", "tcp/127.0.0.1:8080") in kinds
    assert all(k != "listener-new" for k, _ in kinds)
    # accepting makes it quiet again
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    assert check(instance, ns) == (0, [])


def test_accept_one_endpoint(instance: Instance, ns: Namespace) -> None:
    """Two new listeners and one gone: accepting one endpoint leaves the others reported."""
    configure(instance)
    gone = listen(ns, "127.0.0.1", 8080)
    r = instance.cli("sockets", "accept", "tcp/0.0.0.0:1", "--netns", ns.name)
    assert r.rc == 2 and "no listener baseline yet" in r.err and r.one_line_error
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    listen(ns, "0.0.0.0", 31337)
    listen(ns, "10.9.0.1", 9090)
    gone.kill()
    gone.wait()
    _, deltas = check(instance, ns)
    assert len(deltas) == 3
    r = instance.cli(
        "sockets", "accept", "tcp/10.9.0.1:9090", "tcp/127.0.0.1:8080", "--netns", ns.name
    )
    assert r.rc == 0, r.err
    rc, deltas = check(instance, ns)
    assert (rc, [(d["kind"], d["subject"]) for d in deltas]) == (
        1,
        [("listener-new", "tcp/0.0.0.0:31337")],
    )
    for argv, message in [
        (("accept", "tcp/10.9.0.1:1"), "nothing listens there"),
        (("check", "tcp/0.0.0.0:31337"), "endpoints go with `sockets accept`"),
    ]:
        r = instance.cli("sockets", *argv, "--netns", ns.name)
        assert r.rc == 2 and message in r.err and r.one_line_error, r.err
    assert check(instance, ns)[1][0]["subject"] == "tcp/0.0.0.0:31337"


def tamper(instance: Instance, sql: str) -> None:
    db = sqlite3.connect(instance.state / "stockade.db", isolation_level=None)
    try:
        db.execute(sql)
    finally:
        db.close()


def test_the_listener_baseline_is_signed(instance: Instance, ns: Namespace) -> None:
    """A listener slipped into the stored baseline (to hide a backdoor), or a version with its
    signature wiped, fails the check: a critical alert, exit 2, until it is accepted again."""
    configure(instance)
    listen(ns, "127.0.0.1", 8080)
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    assert (instance.state / "keys" / "files.pub").exists()  # the instance's key, made for it
    listen(ns, "0.0.0.0", 31337)
    assert check(instance, ns)[0] == 1
    backdoor = '{"address": "0.0.0.0", "port": 31337, "program": "python3", "proto": "tcp"}'
    tamper(
        instance,
        "INSERT INTO baseline_entries (part, key, data, vfrom) "
        f"VALUES ('sockets', CAST('tcp|0.0.0.0|31337|python3' AS BLOB), '{backdoor}', 1)",
    )
    r = instance.cli("sockets", "check", "--netns", ns.name)
    assert r.rc == 2 and r.one_line_error and "fails its signature check" in r.err, r.err
    alerts = SqliteStore(instance.state / "stockade.db").list_alerts()
    assert [(a.kind, str(a.severity)) for a in alerts] == [("baseline-tampered", "critical")]
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    assert check(instance, ns) == (0, [])
    tamper(instance, "UPDATE baseline_versions SET signature = x'', key_id = ''")
    r = instance.cli("sockets", "check", "--netns", ns.name)
    assert r.rc == 2 and "is not signed" in r.err


def test_daemon_stops_checking_a_tampered_baseline_until_accepted(
    instance: Instance, ns: Namespace
) -> None:
    configure(instance, schedule="0.3s")
    listen(ns, "127.0.0.1", 8080)
    d = Daemon(instance, namespace=ns)
    d.wait_for("took the 1 current listeners as version 1")
    tamper(instance, "UPDATE baseline_entries SET data = replace(data, '8080', '8081')")
    d.wait_for("fails its signature check.*no check against it until it is accepted again")
    time.sleep(1.5)  # several scheduled checks: one alert, not one each
    assert [a["kind"] for a in d.alerts()] == ["baseline-tampered"]
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    listen(ns, "0.0.0.0", 4444)
    d.wait_alert(lambda a: a["kind"] == "listener-new")
    assert d.stop() == 0


def test_ignored_listeners_are_not_reported(instance: Instance, ns: Namespace) -> None:
    configure(instance, ignore=["tcp:*:5353"])
    assert instance.cli("sockets", "accept", "--netns", ns.name).rc == 0
    listen(ns, "0.0.0.0", 5353)
    assert check(instance, ns) == (0, [])
    listen(ns, "0.0.0.0", 5354)
    rc, deltas = check(instance, ns)
    assert (rc, [d["subject"] for d in deltas]) == (1, ["tcp/0.0.0.0:5354"])


def test_daemon_alerts_once_per_new_listener(instance: Instance, ns: Namespace) -> None:
    configure(instance, schedule="0.3s")
    listen(ns, "127.0.0.1", 8080)
    d = Daemon(instance, namespace=ns)
    d.wait_for("took the 1 current listeners as version 1")
    listen(ns, "0.0.0.0", 4444)
    alert, _ = d.wait_alert(lambda a: a["kind"] == "listener-new")
    assert alert["subject"] == "tcp/0.0.0.0:4444"
    assert alert["severity"] == "high"
    d.wait_for("ALERT high listener-new tcp/0.0.0.0:4444")
    mark = d.mark()
    time.sleep(1.5)  # several more checks: the same delta is not raised again
    assert [a["subject"] for a in d.alerts()] == ["tcp/0.0.0.0:4444"]
    assert not any("ALERT" in line for line in d.lines[mark:])
    assert d.stop() == 0
