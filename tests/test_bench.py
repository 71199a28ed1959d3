"""The benchmarks still run (on a tiny tree; figures are not judged here, they go in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_tool

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(
    name: str, tmp_path: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``bench/NAME ARGS --json FILE``; it must succeed. Returns its run and its figures."""
    out = tmp_path / "figures.json"
    r = subprocess.run(
        [sys.executable, str(BENCH / name), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads(out.read_text())


def need_namespaces() -> None:
    from tests.netns import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)


@pytest.mark.slow
def test_files_vs_aide_runs(tmp_path: Path) -> None:
    need_tool("aide")
    tree = tmp_path / "tree"
    for i in range(200):
        d = tree / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(bytes(i))
    r, figures = run_bench("files_vs_aide", tmp_path, "--tree", str(tree), "--rounds", "1")
    assert "ratios aide / stockade" in r.stdout
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
    need_namespaces()
    need_tool("ss")
    r, figures = run_bench("sockets_vs_ss", tmp_path, "--sockets", "200", "--rounds", "1")
    assert figures["agree"] is True
    assert figures["listeners"] == 250
    assert "ratio" in r.stdout


def test_scan_vs_nmap_runs_and_agrees(tmp_path: Path) -> None:
    need_namespaces()
    need_tool("nmap")
    r, figures = run_bench("scan_vs_nmap", tmp_path, "--ports", "2000", "--targets", "normal,drop")
    for kind in ("normal", "drop"):
        assert figures[kind]["agree"] is True
        assert figures[kind]["open"]["stockade_connect"] == [22, 25, 80, 443]
        assert figures[kind]["open"]["stockade_syn"] == [22, 25, 80, 443]
    assert "stockade SYN / nmap -sS" in r.stdout


def test_discovery_vs_nmap_runs_and_agrees(tmp_path: Path) -> None:
    need_namespaces()
    need_tool("nmap")
    r, figures = run_bench("discovery_vs_nmap", tmp_path, "--live", "4", "--rounds", "1")
    assert len(figures["live"]) == 4
    for topology in ("link", "routed"):
        assert figures[topology]["agree"] is True
        up = figures[topology]["up"]
        assert up["stockade"] == up["nmap"] == sorted([*figures["live"], "10.81.0.1"])
    assert "stockade / nmap" in r.stdout


def test_facts_vs_nmap_runs_and_finds_everything(tmp_path: Path) -> None:
    need_namespaces()
    need_tool("nmap")
    r, figures = run_bench(
        "facts_vs_nmap", tmp_path, "--greet", "4", "--silent", "1", "--nmap", "scripts", timeout=900
    )
    assert figures["complete"]["stockade"] is True
    assert figures["found"]["stockade"] == {"banners": 4, "certs": 7, "right_cert": True}
    assert figures["ports"] == {"greet": 4, "silent": 1, "tls": 7}
    assert "nmap_scripts / stockade" in r.stdout
