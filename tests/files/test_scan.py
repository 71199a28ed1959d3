"""The scanner at size: worker processes, a dying worker, big files, progress."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.config.schema import FileRule, FilesSection
from stockade.sensors.files import scan as scan_module
from stockade.sensors.files.collect import Collected
from stockade.sensors.files.policy import Policy
from stockade.sensors.files.pool import WorkerPool
from stockade.sensors.files.scan import scan
from tests.conftest import Instance


def many_files(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"d{i % 37}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(i % 3000))


def entries(root: Path, workers: int) -> dict[bytes, str | None]:
    policy = Policy.from_config(FilesSection(rules=[FileRule(path=str(root))]))
    return {
        c.path: c.entry
        for c in scan(policy, policy.rules, workers=workers)
        if isinstance(c, Collected)
    }


def test_worker_processes_give_the_same_entries_as_one_process(tmp_path: Path) -> None:
    many_files(tmp_path / "t", 4000)  # above the pool threshold
    pooled = entries(tmp_path / "t", workers=2)
    inline = entries(tmp_path / "t", workers=1)
    assert len(pooled) == 4000 + 37 + 1
    assert pooled == inline


@pytest.mark.parametrize("when", ["at-once", "after-first-results", "both-workers"])
def test_a_worker_that_dies_loses_nothing(tmp_path: Path, when: str) -> None:
    many_files(tmp_path / "t", 3000)
    files = sorted(os.fsencode(p) for p in (tmp_path / "t").rglob("f*"))
    mask = Policy.from_config(FilesSection(rules=[FileRule(path=str(tmp_path))])).rules[0].mask
    pool = WorkerPool(2)
    got: list[bytes] = []
    try:
        for i in range(0, len(files), 100):
            pool.submit([(p, mask) for p in files[i : i + 100]])
        if when == "after-first-results":
            results = pool.drain()
            got.append(next(results).path)
        pool._workers[0].proc.kill()
        if when == "both-workers":
            pool._workers[1].proc.kill()
        got += [c.path for c in (results if when == "after-first-results" else pool.drain())]
    finally:
        pool.terminate()
    assert sorted(got) == files  # every file exactly once


def test_big_file_is_streamed(tmp_path: Path) -> None:
    """Hashing a 1 GiB file keeps the worker's memory far below the file's size."""
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of zeros, no disk used
    code = (
        "import json\n"
        "from stockade.sensors.files.collect import collect_regular\n"
        "from stockade.sensors.files.attributes import BITS\n"
        f"c = collect_regular({os.fsencode(big)!r}, BITS['sha256'] | BITS['size'])\n"
        "print(json.loads(c.entry)['sha256'])\n"
        # VmHWM is this process's peak; ru_maxrss would include the forked test runner's
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    digest, peak_kib = out.stdout.split()
    h = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(1024):
        h.update(zeros)
    assert digest == h.hexdigest()
    assert int(peak_kib) < 100 * 1024  # well under 1 GiB: memory does not follow file size


def test_progress_reports_reach_the_total(tmp_path: Path) -> None:
    many_files(tmp_path / "t", 2000)
    calls: list[tuple[int, int, int, int]] = []
    policy = Policy.from_config(FilesSection(rules=[FileRule(path=str(tmp_path / "t"))]))
    n = sum(1 for _ in scan(policy, policy.rules, workers=2, progress=lambda *a: calls.append(a)))
    found, done, hashed = calls[-1]
    assert found == done == n
    assert hashed == sum(i % 3000 for i in range(2000))
    assert len(calls) > 3


def test_large_tree_through_the_cli(instance: Instance, tmp_path: Path) -> None:
    many_files(tmp_path / "t", 3000)
    instance.watch(tmp_path / "t")
    assert instance.run("files", "init").rc == 0
    (tmp_path / "t" / "d5" / "f5").write_bytes(b"changed")
    _, findings = instance.check()
    assert [f["path"] for f in findings] == [str(tmp_path / "t" / "d5" / "f5")]
    assert scan_module.POOL_THRESHOLD_FILES < 3000


def test_progress_bar_on_a_terminal_only(instance: Instance, tmp_path: Path) -> None:
    import pty

    many_files(tmp_path / "t", 3000)
    instance.watch(tmp_path / "t")
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "stockade", *instance.args("files", "init")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out, _ = p.communicate(timeout=120)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert p.returncode == 0
    assert b"baseline" in seen
    assert re.search(rb"\d+/\d+", seen)  # the bar: "baseline ━━━ 1234/3039 ..."
    assert b"\x1b[" not in out  # stdout stays clean
    # without a terminal there is no bar at all
    r = instance.cli("files", "check")
    assert r.err == ""
