"""Walk fail2ban's annotated sample logs the way its own sample test does, with stockade's engine.

fail2ban's Debian package installs, inside its Python package, ``tests/files/logs/<filter>``:
log lines preceded by ``# failJSON: {...}`` annotations (expected match, host, time and other
captures), ``# filterOptions:`` lines that re-run the following block with other filter options
(a list means several runs), ``# fileOptions:`` common to the file, and ``# addFILE:`` to include
another sample file. Constraints (``"constraint": "opts.get('mode') != 'aggressive'"``,
``test.condition``) are read with a tiny evaluator for the forms the samples use.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

F2B = Path("/usr/lib/python3/dist-packages/fail2ban")
LOGS = F2B / "tests" / "files" / "logs"
TEST_CONFIG = F2B / "tests" / "config"
CONFIG = Path("/etc/fail2ban")
TEST_NOW = 1124013600  # Sun Aug 14 12:00:00 CEST 2005: fail2ban's tests' "now"
TEST_NOW_STR = dt.datetime.fromtimestamp(TEST_NOW, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
TEST_TZ = "CET-01CEST-02,M3.5.0,M10.5.0"

_ANNOTATION = re.compile(r"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$")
_CONSTRAINT = re.compile(
    r"""^\s*(?:name|opts\.get\(['"](\w+)['"]\))\s*(==|!=)\s*['"]([^'"]*)['"]\s*$"""
)


def constraint_holds(expr: str, name: str, opts: dict[str, Any]) -> bool:
    """Evaluate the two forms the samples use: ``name == 'x'`` and ``opts.get('k') != 'v'``."""
    m = _CONSTRAINT.match(expr)
    if m is None:
        raise ValueError(f"unsupported constraint {expr!r}")
    key, op, value = m.groups()
    actual = opts.get(key) if key else name
    return (actual == value) if op == "==" else (actual != value)


@dataclass
class Sample:
    filter: str  # the filter file's name (sshd)
    run: str  # filter name plus options, identifying the filter instance
    opts: dict[str, Any]
    file: str
    lineno: int
    line: str
    expect: dict[str, Any]


def _test_filters_dir() -> Path:
    """fail2ban's own test filters (zzz-*.conf) include ``../../../../../../../config/filter.d/
    common.conf``, a path meant for its source tree. Lay them out in a temporary folder where
    that path reaches the installed common.conf, as in the source tree."""
    top = Path(tempfile.mkdtemp(prefix="f2b-test-filters-"))
    (top / "config").symlink_to(CONFIG)
    fdir = top / "a" / "b" / "c" / "d" / "tests" / "config" / "filter.d"
    fdir.mkdir(parents=True)
    for conf in (TEST_CONFIG / "filter.d").glob("zzz-*.conf"):
        shutil.copy(conf, fdir / conf.name)
    return fdir.parent


def filter_names() -> list[tuple[str, Path]]:
    """The filters fail2ban's sample test covers, with their configuration folder."""
    out = []
    for conf in sorted((CONFIG / "filter.d").glob("*.conf")):
        if not conf.name.endswith("common.conf"):
            out.append((conf.stem, CONFIG))
    zzz = sorted((TEST_CONFIG / "filter.d").glob("zzz-*.conf"))
    if zzz:
        test_dir = _test_filters_dir()
        out += [(conf.stem, test_dir) for conf in zzz]
    return out


def samples(name: str) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], Sample | None]]:
    """Yield (filter runs, sample) pairs: the runs that apply to the sample line.

    A ``(runs, None)`` item announces a new block of runs (so the caller can make fresh filter
    instances when an option combination is first seen, as fail2ban caches them by name).
    """
    files = [name]
    i = 0
    while i < len(files):
        fname = files[i]
        i += 1
        common: dict[str, Any] = {}
        runs: list[tuple[str, dict[str, Any]]] = []
        ignore_block = False
        lines = (LOGS / fname).read_text("utf-8", "replace").splitlines()
        n = 0
        while n < len(lines):
            line = lines[n]
            n += 1
            m = _ANNOTATION.match(line)
            expect: dict[str, Any] = {}
            if m:
                data = json.loads(m.group(2))
                kind = m.group(1)
                if kind == "fileOptions":
                    common = data
                    continue
                if kind == "filterOptions":
                    runs = []
                    ignore_block = False
                    for opts in data if isinstance(data, list) else [data]:
                        opts = {**common, **opts}
                        cond = opts.get("test.condition")
                        if cond:
                            ignore_block = not constraint_holds(
                                cond.replace("==", " == "), name, opts
                            )
                        if not ignore_block:
                            fopts = {k: v for k, v in opts.items() if not k.startswith("test.")}
                            run = name + (
                                opts.get("test.filter-name") or (str(fopts) if fopts else "")
                            )
                            runs.append((run, opts))
                    yield runs, None
                    continue
                if kind == "addFILE":
                    files.append(data)
                    continue
                expect = data
                if n >= len(lines):
                    break
                line = lines[n]
                n += 1
            elif ignore_block or line.startswith("#") or not line.strip():
                continue
            if ignore_block:
                continue
            active = runs or [(name, {})]
            if not runs:
                runs = active
                yield runs, None
            yield active, Sample(name, "", {}, fname, n, line.rstrip("\r\n"), expect)


def local_epoch(text: str) -> float:
    """fail2ban's samples give times as local time (in TEST_TZ)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    t = dt.datetime.strptime(text, fmt)
    return time.mktime(t.timetuple()) + t.microsecond / 1e6


class TestTZ:
    """Run with fail2ban's test time zone."""

    def __enter__(self) -> None:
        self.old = os.environ.get("TZ")
        os.environ["TZ"] = TEST_TZ
        time.tzset()

    def __exit__(self, *exc: object) -> None:
        if self.old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = self.old
        time.tzset()
