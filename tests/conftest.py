"""Shared fixtures: a stockade instance of its own (config file and state folder) per test."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from stockade.cli.main import main

ROOT = os.geteuid() == 0

pytest_plugins = [
    "tests.debpkg",  # the `debs` fixture: a real Debian package in three versions
    "tests.daemonproc",  # the `daemon` fixture: a real `stockade run` process
    "tests.netns",  # the `netns` fixture: network namespaces made for the test
]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    @property
    def one_line_error(self) -> bool:
        """The error is a single line and not a traceback."""
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        return len(lines) == 1 and "Traceback" not in self.err


class Instance:
    """An independent stockade: its own configuration file and state folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.config = base / "stockade.toml"
        self.state = base / "state"
        self.files: dict[str, Any] = {"package_check": False, "debounce": "0.1s"}
        self.rules: list[dict[str, Any]] = []

    def write(self, **files: Any) -> Instance:
        self.files.update(files)
        data = {"files": {**self.files, "rules": self.rules}}
        self.config.write_text(tomli_w.dumps(data))
        return self

    def watch(self, path: Path | str, attributes: str = "binaries", **rule: Any) -> Instance:
        self.rules.append({"path": str(path), "attributes": attributes, **rule})
        return self.write()

    def args(self, *args: str) -> list[str]:
        return ["--config", str(self.config), "--state-dir", str(self.state), *args]

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        """Run the CLI in this process."""
        out, err = io.StringIO(), io.StringIO()
        old_env = dict(os.environ)
        if env:
            os.environ.update(env)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(self.args(*map(str, args)))
                except SystemExit as e:
                    rc = int(e.code or 0)
        finally:
            os.environ.clear()
            os.environ.update(old_env)
        return Result(rc, out.getvalue(), err.getvalue())

    def cli(self, *args: str | Path, timeout: float = 120, **kw: Any) -> Result:
        """Run the CLI as a separate process, as an administrator would."""
        return run_cli(*self.args(*map(str, args)), timeout=timeout, **kw)

    def check(self, *args: str | Path) -> tuple[int, list[dict[str, Any]]]:
        r = self.run("files", "check", "--json", *args)
        assert r.rc in (0, 1), r.err
        lines = r.json_lines()
        # the exit status says whether anything changed, notes aside
        assert r.rc == (1 if any("change" in x for x in lines) else 0)
        return r.rc, lines


def run_cli(*args: str, timeout: float = 120, **kw: Any) -> Result:
    p = subprocess.run(
        [sys.executable, "-m", "stockade", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance(tmp_path).write()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small tree of 'binaries' to watch."""
    t = tmp_path / "tree"
    (t / "bin").mkdir(parents=True)
    (t / "lib" / "deep").mkdir(parents=True)
    (t / "bin" / "ls").write_bytes(b"\x7fELF ls binary " * 100)
    (t / "bin" / "ps").write_bytes(b"\x7fELF ps binary " * 100)
    (t / "bin" / "bash").write_bytes(b"\x7fELF bash " * 1000)
    (t / "lib" / "libc.so").write_bytes(b"libc" * 5000)
    (t / "lib" / "deep" / "mod.ko").write_bytes(b"module")
    os.symlink("ls", t / "bin" / "dir")
    for p in t.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o755)
    return t


@pytest.fixture
def watched(instance: Instance, tree: Path) -> Instance:
    """An instance watching ``tree`` with a baseline already built."""
    instance.watch(tree)
    r = instance.run("files", "init")
    assert r.rc == 0, r.err
    return instance


def by_path(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in findings if "change" in f}


def need_root() -> None:
    if not ROOT:
        pytest.skip("needs root")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return path


@pytest.fixture
def sh() -> Iterator[Any]:
    def run(*cmd: str | Path) -> str:
        return subprocess.run(
            list(map(str, cmd)), check=True, capture_output=True, text=True
        ).stdout

    yield run
