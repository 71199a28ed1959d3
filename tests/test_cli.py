"""The command line as an administrator meets it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stockade import __version__
from tests.conftest import Instance, run_cli


def test_version_and_module_entry_point() -> None:
    r = run_cli("--version")
    assert r.rc == 0 and r.out.strip() == f"stockade {__version__}"
    exe = Path(sys.executable).parent / "stockade"
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False)
    assert p.stdout.strip() == f"stockade {__version__}"


def test_usage_errors_are_one_line_with_status_2() -> None:
    for args in (["bogus"], ["files"], ["files", "diff", "x"], ["alerts", "--limit", "x"], []):
        r = run_cli(*args)
        assert r.rc == 2, args
        assert "error:" in r.err and "Traceback" not in r.err, args


def test_alerts_listing(watched: Instance, tree: Path) -> None:
    assert watched.run("alerts").out.strip() == "no alerts"
    (tree / "bin" / "ls").chmod(0o4755)
    (tree / "bin" / "new").write_text("x")
    assert watched.run("files", "check").rc == 1
    r = watched.run("alerts", "--since", "1h", "--part", "files", "--json")
    alerts = r.json_lines()
    assert {a["kind"] for a in alerts} == {"file-changed", "file-added"}
    assert {a["severity"] for a in alerts} == {"critical", "high"}
    crit = watched.run("alerts", "--severity", "critical", "--json").json_lines()
    assert [a["subject"] for a in crit] == [str(tree / "bin" / "ls")]
    assert watched.run("alerts", "--part", "logs", "--json").out == ""
    table = watched.run("alerts").out
    assert "SEVERITY" in table and str(tree / "bin" / "new") in table
    for bad in (["--since", "yesterday"], ["--severity", "huge"], ["--limit", "0"]):
        r = watched.run("alerts", *bad)
        assert r.rc == 2 and r.one_line_error, bad


def test_output_into_a_closed_pipe(watched: Instance, tree: Path) -> None:
    for i in range(300):
        (tree / f"new{i}").write_text("x")
    cmd = [sys.executable, "-m", "stockade", *watched.args("files", "check", "--json")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    json.loads(p.stdout.readline())
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert b"Traceback" not in err


def test_service_unit_is_written(instance: Instance, tmp_path: Path) -> None:
    r = instance.run("service", "install", "--unit-dir", tmp_path / "units")
    assert r.rc == 0
    unit = (tmp_path / "units" / "stockade.service").read_text()
    assert "ExecStart=" in unit and " run --config " in unit and "--state-dir" in unit
    assert "[Install]" in unit and "WantedBy=multi-user.target" in unit
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "units" / "stockade.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    if verify.returncode == 0 or "not found" not in verify.stderr:
        assert "Unknown" not in verify.stderr and "Invalid" not in verify.stderr, verify.stderr
    r = instance.run("service", "uninstall", "--unit-dir", tmp_path / "units")
    assert r.rc == 0 and not (tmp_path / "units" / "stockade.service").exists()
