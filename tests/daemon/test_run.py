"""``stockade run``: realtime detection, schedules, signals, reloads, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from stockade.daemon.supervisor import supervise
from tests.conftest import Instance, need_root
from tests.debpkg import LIB, PKG, dpkg, dpkg_lock_held


def ready(d) -> None:
    d.wait_for(r"watching \d+ folders")


def test_first_start_builds_the_baseline_and_sees_changes_in_real_time(
    instance: Instance, tree: Path, daemon
) -> None:
    instance.watch(tree)
    d = daemon(instance)
    d.wait_for("no file baseline yet: building one")
    d.wait_for(r"baseline version 1: \d+ entries")
    ready(d)
    target = tree / "bin" / "ls"
    st = target.stat()
    target.write_bytes(b"\x7fELF trojan".ljust(st.st_size, b"\0"))
    alert, took = d.wait_alert(lambda a: a["subject"] == str(target))
    print(f"realtime change reported after {took:.2f} s")
    assert alert["kind"] == "file-changed"
    assert "sha256" in alert["detail"]["attributes"]
    assert alert["severity"] == "high"
    assert d.stop() == 0
    d.wait_for("stopped")


def test_new_subfolders_are_followed(watched: Instance, tree: Path, daemon) -> None:
    d = daemon(watched)
    ready(d)
    new = tree / "lib" / "new" / "deeper"
    new.mkdir(parents=True)
    time.sleep(0.3)  # the folder is watched from now on
    (new / "implant.so").write_bytes(b"x")
    alert, _ = d.wait_alert(lambda a: a["subject"] == str(new / "implant.so"))
    assert alert["kind"] == "file-added"
    # a file that lands in a new folder before its watch exists is found as well
    burst = tree / "lib" / "burst"
    os.makedirs(burst / "a" / "b")
    (burst / "a" / "b" / "fast").write_bytes(b"y")
    d.wait_alert(lambda a: a["subject"] == str(burst / "a" / "b" / "fast"))
    # and a further change inside it is still seen
    (new / "implant.so").write_bytes(b"xx")
    d.wait_alert(lambda a: a["subject"] == str(new / "implant.so") and "size" in str(a["detail"]))
    assert d.stop() == 0


def test_removal_and_permission_changes(watched: Instance, tree: Path, daemon) -> None:
    d = daemon(watched)
    ready(d)
    (tree / "lib" / "libc.so").unlink()
    (tree / "bin" / "ps").chmod(0o4755)
    d.wait_alert(lambda a: a["kind"] == "file-removed" and a["subject"].endswith("libc.so"))
    a, _ = d.wait_alert(lambda a: a["subject"].endswith("/ps"))
    assert a["severity"] == "critical"
    assert d.stop() == 0


def test_same_change_is_reported_once(watched: Instance, tree: Path, daemon) -> None:
    d = daemon(watched)
    ready(d)
    target = tree / "bin" / "ls"
    target.write_bytes(b"changed")
    d.wait_alert(lambda a: a["subject"] == str(target))
    os.utime(target)  # an event, but the entry is... different mtime: a new state
    time.sleep(1)
    os.setxattr(tree / "bin", "user.x", b"1")  # unrelated event in the same folder
    d.wait_alert(lambda a: a["subject"] == str(tree / "bin"))
    n = sum(1 for a in d.alerts() if a["subject"] == str(target))
    assert n == 2  # the write, and the touch: never one alert per event
    assert d.stop() == 0


def test_changes_made_while_stopped_are_found_at_start(
    watched: Instance, tree: Path, daemon
) -> None:
    (tree / "bin" / "ls").write_bytes(b"replaced while stockade was not running")
    d = daemon(watched)
    d.wait_for("full check at start: 1 changed")
    d.wait_alert(lambda a: a["subject"] == str(tree / "bin" / "ls"))
    assert d.stop() == 0


def test_sighup_reload_keeps_the_old_configuration_when_the_new_one_is_bad(
    watched: Instance, tree: Path, daemon
) -> None:
    d = daemon(watched)
    ready(d)
    good = watched.config.read_text()
    watched.config.write_text(good + "\n[files]\nbogus = 1\n")
    m = d.mark()
    d.signal(signal.SIGHUP)
    line = d.wait_for("not valid, keeping the old one", after=m)
    assert "stockade.toml" in line
    (tree / "bin" / "ls").write_bytes(b"still watched")
    d.wait_alert(lambda a: a["subject"] == str(tree / "bin" / "ls"))
    # a good configuration is taken: parts restart with it
    watched.write(debounce="0.05s")
    m = d.mark()
    d.signal(signal.SIGHUP)
    d.wait_for("configuration reloaded", after=m)
    d.wait_for(r"watching \d+ folders", after=m)
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_sigint_stops_cleanly(watched: Instance, daemon) -> None:
    d = daemon(watched)
    ready(d)
    d.signal(signal.SIGINT)
    assert d.proc.wait(30) == 0
    d.wait_for("stopped")


def test_missing_path_is_said_once_and_the_rest_goes_on(
    instance: Instance, tree: Path, tmp_path: Path, daemon
) -> None:
    instance.watch(tree)
    instance.watch(tmp_path / "absent")
    d = daemon(instance)
    ready(d)
    (tree / "bin" / "ls").write_bytes(b"x")
    d.wait_alert(lambda a: a["subject"] == str(tree / "bin" / "ls"))
    assert sum("does not exist" in line for line in d.lines) == 1
    assert d.stop() == 0


def test_tampered_baseline_while_running(watched: Instance, tree: Path, daemon) -> None:
    d = daemon(watched)
    ready(d)
    db = sqlite3.connect(watched.state / "stockade.db", isolation_level=None)
    db.execute("UPDATE baseline_versions SET signature = randomblob(64)")
    db.execute(  # make the running daemon reload the baseline: a new (forged) version number
        "UPDATE baseline_versions SET version = version + 1"
    )
    (tree / "bin" / "ls").write_bytes(b"hidden?")
    d.wait_alert(lambda a: a["kind"] == "baseline-tampered")
    d.wait_for("fails its signature check")
    assert d.proc.poll() is None  # the daemon stays up
    assert d.stop() == 0


def test_inotify_overflow_triggers_a_rescan(watched: Instance, tree: Path, daemon) -> None:
    need_root()
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    old = knob.read_text()
    knob.write_text("16\n")  # applies to inotify instances made from now on
    try:
        d = daemon(watched, "--log-level", "info")
        ready(d)
    finally:
        knob.write_text(old)
    d.proc.send_signal(signal.SIGSTOP)  # pause it so the queue fills up
    try:
        for i in range(200):
            (tree / "lib" / f"spam{i}").write_bytes(b"x")
        (tree / "bin" / "ls").write_bytes(b"changed among the noise")
    finally:
        d.proc.send_signal(signal.SIGCONT)
    d.wait_for("inotify queue overflowed: rescanning everything")
    d.wait_alert(lambda a: a["subject"] == str(tree / "bin" / "ls"))
    assert d.stop() == 0


def test_run_with_a_bad_configuration_fails_with_one_line(instance: Instance) -> None:
    instance.config.write_text("[files]\nschedule = 'soon'\n")
    r = instance.cli("run", timeout=30)
    assert r.rc == 2 and r.one_line_error and "files.schedule" in r.err


class _Flaky:
    name = "flaky"

    def __init__(self) -> None:
        self.starts = 0

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= 2:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)


def test_a_failing_part_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    part = _Flaky()

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(supervise(part, min_backoff=0.01))
        while part.starts < 3:  # noqa: ASYNC110 - polling a counter the part bumps
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert part.starts == 3
    assert sum("flaky: failed: RuntimeError: boom" in r.message for r in caplog.records) == 2


def test_scheduled_full_check(watched: Instance, tree: Path, daemon) -> None:
    watched.write(realtime=False, schedule="1s", check_on_start=False)
    d = daemon(watched)
    d.wait_for("full check scheduled: 0 changed")
    (tree / "lib" / "libc.so").write_bytes(b"patched")
    d.wait_for("full check scheduled: 1 changed")
    d.wait_alert(lambda a: a["subject"] == str(tree / "lib" / "libc.so"))
    assert d.stop() == 0


def test_package_upgrade_while_running_is_accepted_by_itself(
    instance: Instance, debs: dict[str, Path], daemon
) -> None:
    """An upgrade arrives through inotify, is recognised, and goes into the baseline."""
    instance.write(package_check=True, auto_accept_package_changes=True, package_settle="1s")
    instance.watch(LIB)
    assert instance.run("files", "init").rc == 0
    d = daemon(instance)
    ready(d)
    dpkg("-i", debs["2.0"])
    a, _ = d.wait_alert(lambda a: a["kind"] == "package-upgrade")
    assert a["severity"] == "low" and a["detail"]["packages"] == [PKG]
    d.wait_for(r"accepted \d+ package upgrade\(s\) into baseline version 2")
    assert instance.check()[0] == 0
    # the next upgrade too: what dpkg knows is read again, not kept from the first
    files_alerts = lambda: [a for a in d.alerts() if a["part"] == "files"]  # noqa: E731
    mark = len(files_alerts())
    dpkg("-i", debs["3.0"])
    d.wait_for(r"accepted \d+ package upgrade\(s\) into baseline version 3")
    assert {a["kind"] for a in files_alerts()[mark:]} == {"package-upgrade"}
    assert instance.check()[0] == 0
    # a trojan after the upgrade is still an alarm
    (LIB / "tool").write_bytes(b"trojan")
    a, _ = d.wait_alert(lambda a: a["subject"] == str(LIB / "tool"))
    assert a["severity"] == "critical" and a["detail"]["classification"] == "package-mismatch"
    assert d.stop() == 0


def test_a_mismatch_while_dpkg_works_is_judged_when_dpkg_is_done(
    instance: Instance, debs: dict[str, Path], daemon
) -> None:
    """Half-way through an upgrade a file is new and the database old: no critical alarm
    then; once dpkg lets go of its lock the file is judged again (here: still a trojan)."""
    instance.write(package_check=True)
    instance.watch(LIB)
    assert instance.run("files", "init").rc == 0
    d = daemon(instance)
    ready(d)
    with dpkg_lock_held():
        (LIB / "tool").write_bytes(b"trojan written during an upgrade")
        d.wait_for("tool disagrees with package stockade-testpkg while dpkg is at work")
        time.sleep(1)  # several polls while dpkg still holds its lock
        assert [a for a in d.alerts() if a["part"] == "files"] == []
    a, _ = d.wait_alert(lambda a: a["subject"] == str(LIB / "tool"))
    assert a["severity"] == "critical" and a["detail"]["classification"] == "package-mismatch"
    assert d.stop() == 0


def test_a_full_check_waits_while_dpkg_works(
    instance: Instance, debs: dict[str, Path], daemon
) -> None:
    instance.write(package_check=True, realtime=False, schedule="1s", check_on_start=False)
    instance.watch(LIB)
    assert instance.run("files", "init").rc == 0
    with dpkg_lock_held():
        d = daemon(instance)
        d.wait_for(r"dpkg is at work: the full check \(scheduled\) waits until it is done")
        (LIB / "tool").write_bytes(b"trojan written during an upgrade")
        time.sleep(1.5)
        assert [a for a in d.alerts() if a["part"] == "files"] == []
    a, _ = d.wait_alert(lambda a: a["subject"] == str(LIB / "tool"))
    assert a["detail"]["classification"] == "package-mismatch"
    assert d.stop() == 0


def test_a_watched_path_that_appears_later_is_seen_in_real_time(
    instance: Instance, tree: Path, tmp_path: Path, daemon
) -> None:
    later = tmp_path / "dot-ssh"
    instance.watch(tree)
    instance.watch(later, attributes="config")
    assert instance.run("files", "init").rc == 0
    d = daemon(instance)
    ready(d)
    later.mkdir()
    time.sleep(0.3)
    (later / "authorized_keys").write_text("ssh-ed25519 AAAA... intruder")
    d.wait_alert(lambda a: a["subject"] == str(later / "authorized_keys"))
    assert d.stop() == 0


def test_reinit_says_what_it_replaced(watched: Instance, tree: Path) -> None:
    (tree / "bin" / "ls").write_bytes(b"x")
    r = watched.run("files", "init")
    assert r.rc == 0
    assert (
        "it replaces version 1 (1 entries differ); `stockade files restore 1` undoes this" in r.out
    )
