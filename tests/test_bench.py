"""The benchmarks still run (on a tiny tree; figures are not judged here, they go in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_tool

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_files_vs_aide_runs(tmp_path: Path) -> None:
    need_tool("aide")
    tree = tmp_path / "tree"
    for i in range(200):
        d = tree / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(bytes(i))
    out = tmp_path / "figures.json"
    r = subprocess.run(
        [
            sys.executable,
            str(BENCH / "files_vs_aide"),
            "--tree",
            str(tree),
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ratios aide / stockade" in r.stdout
    figures = json.loads(out.read_text())
    # both tools saw the same tree: 200 files in 7 folders, plus the root
    assert figures["tree"]["entries"] == 208
    init = figures["summary"]["init"]
    assert init["aide"]["entries"] == init["stockade"]["entries"] == 208
    for phase in ("init", "check"):
        for tool in ("aide", "stockade"):
            assert figures["summary"][phase][tool]["wall_s"] > 0


def test_files_vs_aide_rejects_bad_input(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(BENCH / "files_vs_aide"), "--tree", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_sockets_vs_ss_runs_and_agrees(tmp_path: Path) -> None:
    from tests.netns import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    need_tool("ss")
    out = tmp_path / "figures.json"
    r = subprocess.run(
        [
            *(sys.executable, str(BENCH / "sockets_vs_ss")),
            *("--sockets", "200", "--rounds", "1", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    figures = json.loads(out.read_text())
    assert figures["agree"] is True
    assert figures["listeners"] == 250
    assert "ratio" in r.stdout


def test_scan_vs_nmap_runs_and_agrees(tmp_path: Path) -> None:
    from tests.netns import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    need_tool("nmap")
    out = tmp_path / "figures.json"
    r = subprocess.run(
        [
            *(sys.executable, str(BENCH / "scan_vs_nmap")),
            *("--ports", "2000", "--targets", "normal,drop", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    figures = json.loads(out.read_text())
    for kind in ("normal", "drop"):
        assert figures[kind]["agree"] is True
        assert figures[kind]["open"]["stockade_connect"] == [22, 25, 80, 443]
        assert figures[kind]["open"]["stockade_syn"] == [22, 25, 80, 443]
    assert "stockade SYN / nmap -sS" in r.stdout
