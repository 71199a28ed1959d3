"""The README's first command: install stockade and run it on the bundled configuration."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.daemonproc import Daemon

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_install_then_run_on_the_bundled_configuration(tmp_path: Path) -> None:
    need_root()
    if Path("/etc/stockade/stockade.toml").exists():
        pytest.skip("this machine has its own /etc/stockade/stockade.toml")
    env = {
        **os.environ,
        "STOCKADE_PREFIX": str(tmp_path / "opt"),
        "STOCKADE_BIN": str(tmp_path / "bin"),
    }
    r = subprocess.run(
        [str(ROOT / "scripts" / "install")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "install: done: stockade" in r.stdout
    exe = tmp_path / "bin" / "stockade"
    proc = subprocess.Popen(
        [str(exe), "--state-dir", str(tmp_path / "state"), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    d = Daemon.__new__(Daemon)
    Daemon.attach(d, proc)
    try:
        d.wait_for("configuration: the bundled quick-start configuration")
        d.wait_for(r"no file baseline yet: building one over .*/usr/bin", timeout=60)
        d.wait_for(r"baseline version 1: \d+ entries", timeout=600)
        d.wait_for(r"watching \d+ folders for changes in real time", timeout=600)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
