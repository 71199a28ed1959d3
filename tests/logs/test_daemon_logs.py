"""The logs part inside ``stockade run``: files, rotation, the journal, slow filters, restarts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from stockade.store import SqliteStore
from tests.conftest import Instance
from tests.logs.conftest_journal import Journald


def syslog_line(msg: str, pid: int = 4242, when: float | None = None) -> str:
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when or time.time()))
    return f"{stamp} web01 sshd[{pid}]: {msg}\n"


def configure(instance: Instance, jails: list[dict[str, Any]], **logs: Any) -> None:
    data = {"files": {"enabled": False}, "logs": {"responder": "dry-run", "jails": jails, **logs}}
    instance.config.write_text(tomli_w.dumps(data))


def bans(instance: Instance) -> list[tuple[str, str]]:
    db = instance.state / "stockade.db"
    if not db.exists():
        return []
    store = SqliteStore(db)
    try:
        return [(b.jail, b.address) for b in store.list_bans()]
    finally:
        store.close()


def wait_bans(instance: Instance, n: int, timeout: float = 30) -> list[tuple[str, str]]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = bans(instance)
        if len(got) >= n:
            return got
        time.sleep(0.1)
    raise AssertionError(f"expected {n} bans, got {bans(instance)}")


def fail(log: Path, address: str, n: int, pid: int = 100) -> None:
    with log.open("a") as f:
        for i in range(n):
            f.write(
                syslog_line(
                    f"Failed password for root from {address} port {40000 + i} ssh2", pid + i
                )
            )


def test_rotation_while_running_loses_no_failure(
    instance: Instance, tmp_path: Path, daemon
) -> None:
    log = tmp_path / "auth.log"
    log.touch()
    configure(instance, [{"name": "sshd", "filter": "sshd", "logpath": [str(log)], "maxretry": 4}])
    d = daemon(instance)
    d.wait_for("starting part logs")
    time.sleep(0.5)
    fail(log, "198.51.100.7", 2)
    os.rename(log, tmp_path / "auth.log.1")  # logrotate: rename, then create
    log.touch()
    fail(tmp_path / "auth.log.1", "198.51.100.7", 1, pid=300)  # a late write to the old file
    fail(log, "198.51.100.7", 1, pid=400)
    assert wait_bans(instance, 1) == [("sshd", "198.51.100.7")]
    assert d.stop() == 0


def test_lines_written_while_stopped_are_read_after_restart(
    instance: Instance, tmp_path: Path, daemon
) -> None:
    log = tmp_path / "auth.log"
    log.touch()
    configure(instance, [{"name": "sshd", "filter": "sshd", "logpath": [str(log)], "maxretry": 3}])
    d = daemon(instance)
    d.wait_for("starting part logs")
    time.sleep(0.5)
    fail(log, "198.51.100.8", 2)
    time.sleep(1)
    assert d.stop() == 0
    fail(log, "198.51.100.8", 1, pid=500)  # while stopped
    shutil.move(log, tmp_path / "auth.log.1")  # and rotated while stopped
    fail(log, "198.51.100.9", 3, pid=600)
    d = daemon(instance)
    assert sorted(wait_bans(instance, 2)) == [("sshd", "198.51.100.8"), ("sshd", "198.51.100.9")]
    assert d.stop() == 0


def test_a_backtracking_filter_does_not_stall_the_others(
    instance: Instance, tmp_path: Path, daemon
) -> None:
    slow_log, log = tmp_path / "app.log", tmp_path / "auth.log"
    slow_log.touch()
    log.touch()
    configure(
        instance,
        [
            {
                "name": "app",
                "failregex": [r"^(a+)+ x from <HOST>$"],
                "logpath": [str(slow_log)],
                "maxretry": 1,
            },
            {"name": "sshd", "filter": "sshd", "logpath": [str(log)], "maxretry": 2},
        ],
        line_budget="50ms",
    )
    d = daemon(instance)
    d.wait_for("starting part logs")
    time.sleep(0.5)
    with slow_log.open("a") as f:
        for _ in range(5):
            # the literal is there, the end is not: (a+)+ backtracks for minutes
            f.write("a" * 40 + " x from 192.0.2.1 but not at the end\n")
    fail(log, "198.51.100.10", 2)
    assert ("sshd", "198.51.100.10") in wait_bans(instance, 1)
    d.wait_for(r"filter app \(jail app\) spent more than \d+ ms on a line")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_debian_12_sshd_in_the_journal(instance: Instance, tmp_path: Path, daemon) -> None:
    """fail2ban's own sshd jail, read in place, with no auth.log: stockade reads the journal."""
    why = Journald.unavailable()
    if why:
        pytest.skip(why)
    f2b = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", f2b, symlinks=True)
    (f2b / "jail.d" / "zz-test.local").write_text(
        f"[sshd]\nenabled = true\nlogpath = {tmp_path}/no-such-auth.log\nmaxretry = 3\n"
    )
    jd = Journald(tmp_path / "journal")
    jd.start()
    try:
        configure(instance, [], fail2ban_dir=str(f2b), journal_directory=str(jd.directory))
        d = daemon(instance)
        d.wait_for("reading the journal")
        time.sleep(1)
        for i in range(3):
            jd.send(
                {
                    "MESSAGE": f"Failed password for root from 203.0.113.50 port {5000 + i} ssh2",
                    "SYSLOG_IDENTIFIER": "sshd",
                    "_PID": str(7000 + i),
                },
                comm="sshd",
            )
        assert wait_bans(instance, 1) == [("sshd", "203.0.113.50")]
        assert d.stop() == 0
    finally:
        jd.stop()


def test_a_log_that_appears_later_is_read(instance: Instance, tmp_path: Path, daemon) -> None:
    """No log file yet and no journal either: the jail waits for the file."""
    log = tmp_path / "later" / "auth.log"
    configure(
        instance,
        [{"name": "sshd", "filter": "sshd", "logpath": [str(log)], "maxretry": 2}],
        journal_directory=str(tmp_path / "no-journal-here"),
        from_start=True,
    )
    d = daemon(instance)
    d.wait_for("waiting for the files")
    log.parent.mkdir()
    fail(log, "198.51.100.30", 2)
    assert wait_bans(instance, 1) == [("sshd", "198.51.100.30")]
    assert d.stop() == 0
