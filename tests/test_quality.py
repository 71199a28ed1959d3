"""The lint configuration bans what must never be written: a shell, pickle, eval."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"

BANNED = {
    "shell": (
        "import subprocess\n\n\ndef f(x: str) -> None:\n"
        "    subprocess.run(x, shell=True, check=True)\n",
        "S602",
    ),
    "pickle": (
        "import pickle\n\n\ndef f(x: bytes) -> object:\n    return pickle.loads(x)\n",
        "TID251",
    ),
    "eval": ("def f(x: str) -> object:\n    return eval(x)\n", "S307"),
    "exec": ("def f(x: str) -> None:\n    exec(x)\n", "S102"),
    "os.system": ("import os\n\n\ndef f(x: str) -> None:\n    os.system(x)\n", "TID251"),
    "create_task": (
        "import asyncio\n\n\nasync def f() -> None:\n    asyncio.create_task(f())\n",
        "TID251",
    ),
}


@pytest.mark.parametrize("name", sorted(BANNED))
def test_banned_constructs_fail_the_lint(tmp_path: Path, name: str) -> None:
    if not RUFF.exists():
        pytest.skip("ruff is not installed in this environment")
    code, rule = BANNED[name]
    src = tmp_path / "src" / "stockade"
    src.mkdir(parents=True)
    (src / "bad.py").write_text(code)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    r = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--output-format", "concise", "src"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert rule in r.stdout, r.stdout
