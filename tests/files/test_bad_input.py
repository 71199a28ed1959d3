"""Awkward things in a watched tree give a clear entry in the report, never a crash or a hang."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stockade.config.schema import FileRule, FilesSection
from stockade.sensors.files.collect import collect_regular
from stockade.sensors.files.policy import Policy
from stockade.sensors.files.walk import Found, walk
from tests.conftest import Instance, by_path, need_root, need_tool


def notes(findings: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        if "note" in f:
            out.setdefault(f["path"], []).append(f["note"])
    return out


def test_special_files_are_recorded_and_never_opened(instance: Instance, tmp_path: Path) -> None:
    need_root()
    t = tmp_path / "dev"
    t.mkdir()
    os.mkfifo(t / "fifo")  # opening this for reading would block forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(t / "sock"))
    os.mknod(t / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(t / "disk", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    instance.watch(t)
    r = instance.cli("files", "init", "--json", timeout=60)  # a hang fails by timeout
    assert r.rc == 0, r.err
    kinds = {Path(n["path"]).name: n["note"] for n in json.loads(r.out)["notes"]}
    assert kinds == {"fifo": "not-read", "sock": "not-read", "null": "not-read", "disk": "not-read"}
    r = instance.run("files", "show", t / "null", "--json")
    assert json.loads(r.out)["entry"]["dev"] == "1:3"
    assert json.loads(r.out)["entry"]["type"] == "chardev"
    # a device replaced by another major/minor is a change
    os.unlink(t / "null")
    os.mknod(t / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    _, findings = instance.check()
    assert by_path(findings)[str(t / "null")]["attributes"]["dev"] == {"old": "1:3", "new": "1:5"}
    sock.close()


def test_unreadable_file_is_noted_not_fatal(instance: Instance, tmp_path: Path) -> None:
    """Without the capabilities that let root read anything, a file without read permission
    gets its attributes recorded but no hash, and a folder that cannot be listed is noted."""
    need_root()
    need_tool("setpriv")
    t = tmp_path / "t"
    t.mkdir()
    (t / "open").write_text("readable")
    (t / "secret").write_text("no access")
    (t / "secret").chmod(0o000)
    (t / "closed").mkdir()
    (t / "closed" / "inside").write_text("x")
    (t / "closed").chmod(0o000)
    instance.watch(t)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*drop, sys.executable, "-m", "stockade", *instance.args(*a)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    r = run("files", "init", "--json")
    assert r.returncode == 0, r.stderr
    got = {Path(n["path"]).name: n["note"] for n in json.loads(r.stdout)["notes"]}
    assert got == {"secret": "unreadable", "closed": "unreadable"}
    r = run("files", "check", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert {(Path(x["path"]).name, x["note"]) for x in lines} == {
        ("secret", "unreadable"),
        ("closed", "unreadable"),
    }
    # the unreadable file's permissions are still watched
    (t / "secret").chmod(0o004)
    r = run("files", "check", "--json")
    changes = [json.loads(x) for x in r.stdout.splitlines() if '"change"' in x]
    assert r.returncode == 1, r.stderr
    assert [c["path"] for c in changes] == [str(t / "secret")]
    assert changes[0]["attributes"]["perms"] == {"old": "0000", "new": "0004"}
    # the folder's content was not verified, so it is not reported as removed either
    assert all(c["change"] != "removed" for c in changes)


def test_file_vanishing_between_walk_and_read(tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    (t / "a").write_text("a")
    policy = Policy.from_config(FilesSection(rules=[FileRule(path=str(t))]))
    found = [i for i in walk(policy, policy.rules) if isinstance(i, Found)]
    (t / "a").unlink()
    c = collect_regular(os.fsencode(t / "a"), found[-1].rule.mask)
    assert c.entry is None and c.note == "vanished"


def test_tree_changing_during_the_scan(instance: Instance, tmp_path: Path) -> None:
    """Files appear and vanish while init and check run: they finish with 0 or 1, never crash."""
    t = tmp_path / "busy"
    t.mkdir()
    for i in range(3000):
        (t / f"f{i}").write_bytes(b"x" * (i % 50))
    instance.watch(t)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            p = t / f"f{i % 3000}"
            try:
                p.unlink()
                p.write_bytes(b"y")
            except OSError:
                pass
            i += 7

    th = threading.Thread(target=churn)
    th.start()
    try:
        r1 = instance.run("files", "init")
        r2 = instance.run("files", "check", "--json")
    finally:
        stop.set()
        th.join()
    assert r1.rc == 0, r1.err
    assert r2.rc in (0, 1), r2.err
    assert "Traceback" not in r1.err + r2.err


def test_names_that_are_not_utf8(watched: Instance, tree: Path) -> None:
    name = os.fsencode(tree / "bin") + b"/\xff\xfe-evil"
    with open(name, "wb") as f:
        f.write(b"payload")
    _, findings = watched.check()
    added = [f for f in findings if f.get("change") == "added"]
    assert len(added) == 1
    assert os.fsencode(added[0]["path"]) == name  # JSON keeps the exact bytes (\\udcff escapes)
    r = watched.run("files", "check")
    assert "\\xff\\xfe-evil" in r.out  # people see the bytes escaped
    assert watched.run("files", "accept", os.fsdecode(name)).rc == 0
    assert watched.check()[0] == 0


def test_symlink_loops(instance: Instance, tmp_path: Path) -> None:
    t = tmp_path / "loops"
    t.mkdir()
    os.symlink("b", t / "a")
    os.symlink("a", t / "b")
    os.symlink("self", t / "self")
    os.symlink(".", t / "dot")  # a loop through a folder: never followed
    instance.watch(t)
    r = instance.cli("files", "init", "--json", timeout=60)
    assert r.rc == 0, r.err
    noted = {Path(n["path"]).name: n["note"] for n in json.loads(r.out)["notes"]}
    assert noted == {"a": "symlink-loop", "b": "symlink-loop", "self": "symlink-loop"}
    assert instance.check()[0] == 0


def test_watched_root_that_is_a_symlink_loop(instance: Instance, tmp_path: Path) -> None:
    os.symlink("root", tmp_path / "root")
    instance.watch(tmp_path / "root")
    assert instance.cli("files", "init", timeout=60).rc == 0
    assert instance.check()[0] == 0


def test_other_filesystem_is_not_crossed(instance: Instance, tmp_path: Path, sh) -> None:
    need_root()
    t = tmp_path / "t"
    (t / "mnt").mkdir(parents=True)
    (t / "file").write_text("x")
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", t / "mnt")
    try:
        (t / "mnt" / "inside").write_text("other fs")
        instance.watch(t)
        r = instance.run("files", "init", "--json")
        assert r.rc == 0
        noted = {Path(n["path"]).name: n["note"] for n in json.loads(r.out)["notes"]}
        assert noted == {"mnt": "other-filesystem"}
        rc, findings = instance.check()
        assert rc == 0
        assert str(t / "mnt" / "inside") not in by_path(findings)
        # with one_filesystem = false the mounted tree is part of the baseline
        instance.write(one_filesystem=False)
        assert instance.run("files", "init").rc == 0
        r = instance.run("files", "show", t / "mnt" / "inside")
        assert r.rc == 0 and "sha256" in r.out
    finally:
        sh("umount", t / "mnt")


def test_baseline_entries_hidden_by_a_new_mount_are_not_called_removed(
    instance: Instance, tmp_path: Path, sh
) -> None:
    need_root()
    t = tmp_path / "t"
    (t / "sub").mkdir(parents=True)
    (t / "sub" / "f").write_text("x")
    instance.watch(t)
    assert instance.run("files", "init").rc == 0
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", t / "sub")
    try:
        _, findings = instance.check()
        assert str(t / "sub" / "f") not in by_path(findings)
        assert any(f.get("note") == "other-filesystem" for f in findings)
    finally:
        sh("umount", t / "sub")


def test_watched_path_that_does_not_exist(instance: Instance, tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    instance.watch(missing)
    r = instance.run("files", "init", "--json")
    assert r.rc == 0
    assert json.loads(r.out)["notes"] == [
        {"path": str(missing), "note": "missing", "message": "watched path does not exist"}
    ]
    rc, findings = instance.check()
    assert rc == 0 and findings[0]["note"] == "missing"
    missing.mkdir()
    (missing / "x").write_text("x")
    rc, findings = instance.check()
    assert rc == 1
    assert {f["path"] for f in findings if f.get("change") == "added"} == {
        str(missing),
        str(missing / "x"),
    }


def test_recursion_limit_and_exclusions(instance: Instance, tmp_path: Path) -> None:
    t = tmp_path / "t"
    (t / "a" / "b" / "c").mkdir(parents=True)
    (t / "a" / "one").write_text("1")
    (t / "a" / "b" / "two").write_text("2")
    (t / "a" / "b" / "c" / "three").write_text("3")
    (t / "a" / "x.swp").write_text("swap")
    (t / "a" / "cache-123").write_text("c")
    instance.watch(t, recurse=2, exclude=["*.swp"], exclude_regex=[r"/cache-\d+$"])
    assert instance.run("files", "init").rc == 0
    for p, present in [
        ("a", True),
        ("a/one", True),
        ("a/b", True),
        ("a/b/two", False),
        ("a/x.swp", False),
        ("a/cache-123", False),
    ]:
        r = instance.run("files", "show", t / p)
        assert (r.rc == 0) == present, p
    # changes beyond the limit or excluded are not reported
    (t / "a" / "b" / "two").write_text("changed")
    (t / "a" / "x.swp").write_text("changed")
    assert instance.check()[0] == 0
    (t / "a" / "one").write_text("changed")
    assert instance.check()[0] == 1


@pytest.mark.parametrize("path", ["relative/path", ""])
def test_bad_paths_on_the_command_line(watched: Instance, path: str) -> None:
    r = watched.run("files", "check", path)
    assert r.rc == 2 and r.one_line_error, r.err
