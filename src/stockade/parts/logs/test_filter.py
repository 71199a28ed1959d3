"""``stockade logs test``: run a filter over a log file, like fail2ban-regex — on every core.

A large file is cut into as many parts as there are CPUs, each run by a worker process
(:mod:`stockade.parts.logs.test_worker`). A filter keeps state from line to line (multi-line
connection ids live five minutes of log time, the last date stands in for lines without one),
so each worker first reads, without reporting, the ten minutes of log before its part: it
starts its part in the same state a single pass would have. The results are the same as one
pass; the parts are only faster.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockade.detectors.logs.dates import DateDetector, DatePatternError
from stockade.detectors.logs.engine import Failure, FilterSpec, LineFilter
from stockade.detectors.logs.f2b.filterconf import F2bConfigError, load_filter
from stockade.detectors.logs.regex import RegexError, tags_of
from stockade.durations import iso
from stockade.errors import UsageError

READ_SIZE = 1 << 20
PARALLEL_FROM = 8 << 20  # smaller files are run in this process
WARM_UP = 600.0  # seconds of log read before a part, to be in the state one pass would be


@dataclass
class TestResult:
    lines: int = 0
    matched: int = 0  # lines with a failure
    ignored: int = 0  # lines matched as "not a failure" (F-NOFAIL) or by an ignoreregex
    per_regex: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1
    output: list[str] = field(default_factory=list)  # JSON lines, or missed lines

    @property
    def missed(self) -> int:
        return self.lines - self.matched - self.ignored

    def add(self, other: TestResult) -> None:
        self.lines += other.lines
        self.matched += other.matched
        self.ignored += other.ignored
        for k, v in other.per_regex.items():
            self.per_regex[k] = self.per_regex.get(k, 0) + v


def resolve_filter(
    text: str,
    f2bdir: Path | None,
    *,
    datepattern: str | None = None,
    maxlines: int | None = None,
    jails: Sequence[Any] = (),
) -> FilterSpec:
    """FILTER as ``logs test`` takes it: a fail2ban filter name (``sshd``, ``sshd[mode=ddos]``),
    the path of a filter file, ``jail:NAME`` (the filter of a jail of the configuration), or a
    failregex."""
    if text.startswith("jail:"):
        for jail in jails:
            if jail.name == text[5:]:
                return _override(jail.spec, datepattern, maxlines)
        names = ", ".join(j.name for j in jails) or "none"
        raise UsageError(f"no jail {text[5:]!r} in the configuration (jails: {names})")
    name = text.split("[", 1)[0]
    is_path = text.endswith((".conf", ".local")) or "/" in name
    known = f2bdir is not None and (f2bdir / "filter.d" / f"{name}.conf").exists()
    if is_path or known:
        try:
            fdef = load_filter(f2bdir or Path("/etc/fail2ban"), text)
        except F2bConfigError as e:
            raise UsageError(str(e)) from None
        spec = FilterSpec(
            fdef.name,
            fdef.failregex,
            fdef.ignoreregex,
            fdef.prefregex,
            fdef.datepattern,
            fdef.maxlines,
        )
    elif re.fullmatch(r"[\w.\-]+(\[.*\])?", text):
        where = f"{f2bdir}/filter.d" if f2bdir else "(logs.fail2ban_dir is empty)"
        raise UsageError(f"no filter {name!r} in {where}; give a filter name, a file or a regex")
    else:
        spec = FilterSpec("regex", (text,))
    return _override(spec, datepattern, maxlines)


def _override(spec: FilterSpec, datepattern: str | None, maxlines: int | None) -> FilterSpec:
    if datepattern or maxlines:
        spec = FilterSpec(
            spec.name,
            spec.failregex,
            spec.ignoreregex,
            spec.prefregex,
            datepattern or spec.datepattern,
            maxlines or spec.maxlines,
        )
    return spec


def spec_json(spec: FilterSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "failregex": list(spec.failregex),
        "ignoreregex": list(spec.ignoreregex),
        "prefregex": spec.prefregex,
        "datepattern": spec.datepattern,
        "maxlines": spec.maxlines,
    }


def spec_from_json(d: dict[str, Any]) -> FilterSpec:
    return FilterSpec(
        d["name"],
        tuple(d["failregex"]),
        tuple(d["ignoreregex"]),
        d["prefregex"],
        d["datepattern"],
        int(d["maxlines"]),
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, set | frozenset):
        return sorted(str(x) for x in v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v if isinstance(v, str | int | float | bool) or v is None else str(v)


def match_json(f: Failure) -> dict[str, Any]:
    """A match as ``--json`` prints it (without its line number)."""
    out: dict[str, Any] = {"host": f.address, "time": None, "regex": f.regex}
    if f.time is not None:
        out["time"] = iso(f.time)
    for k, v in tags_of(f.fields).items():
        if k not in ("matches", "users", "ip4", "ip6", "dns") and k not in out:
            out[k] = _jsonable(v)
    if f.fid is not None and f.fid != f.address:
        out["fid"] = f.fid
    return out


def read_blocks(
    path: Path, start: int = 0, end: int | None = None, max_line: int = 1 << 24
) -> Iterator[bytes]:
    """The file from ``start`` to ``end`` in blocks of whole lines (a line longer than
    ``max_line`` is cut)."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the log: {e.strerror}") from None
    with f:
        f.seek(start)
        left = None if end is None else end - start
        tail = b""
        while left is None or left > 0:
            chunk = f.read(READ_SIZE if left is None else min(READ_SIZE, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                tail = data if len(data) <= max_line else data[:max_line]
                continue
            tail = data[cut:]
            yield data[:cut]
        if tail:
            yield tail + b"\n"


def scan_range(
    path: Path,
    spec: FilterSpec,
    *,
    start: int = 0,
    end: int | None = None,
    report_from: int = 0,
    mode: str = "",  # "json": JSON lines of matches; "missed": the missed lines; "": counts
    usedns: str = "raw",
    on_line: Callable[[int, str, list[Failure]], None] | None = None,
) -> TestResult:
    """Run the filter over bytes [start, end) of the file, reporting lines from ``report_from``
    on (the lines before only bring the filter into the right state)."""
    try:
        flt = LineFilter(spec, usedns=usedns, raw_hosts=True)
    except (RegexError, DatePatternError) as e:
        raise UsageError(f"filter {spec.name}: {e}") from None
    if mode == "missed":
        flt.prefilter = None
    result = TestResult()
    per = result.per_regex
    out = result.output
    offset = start
    n = 0  # lines reported so far (relative line numbers)
    for block in read_blocks(path, start, end):
        warm = offset < report_from
        skip_lines = block.count(b"\n", 0, max(0, report_from - offset)) if warm else 0
        for ln, line, found in flt.scan_block(block, 1):
            if ln <= skip_lines:
                continue
            rel = n + ln - skip_lines
            if found:
                real = [f for f in found if f.fid is not None and not f.nofail]
                if real:
                    result.matched += 1
                    per[real[0].regex] = per.get(real[0].regex, 0) + 1
                    if mode == "json":
                        out.extend(f"{rel}\t{json.dumps(match_json(f))}" for f in real)
                else:
                    result.ignored += 1
            elif mode == "missed":
                out.append(f"{rel}\t{line}")
            if on_line is not None:
                on_line(rel, line, found)
        n += block.count(b"\n") - skip_lines
        offset += len(block)
    result.lines = n
    return result


def _line_start(f: Any, pos: int) -> int:
    """The offset of the first line that starts at or after ``pos``."""
    if pos == 0:
        return 0
    f.seek(pos - 1)
    rest = f.read(1 << 16)
    nl = rest.find(b"\n")
    while nl < 0 and rest:
        more = f.read(1 << 16)
        if not more:
            return pos - 1 + len(rest)
        rest += more
        nl = rest.find(b"\n")
    return pos - 1 + nl + 1 if nl >= 0 else pos - 1 + len(rest)


def warm_start(path: Path, spec: FilterSpec, start: int) -> int:
    """Where to begin reading so that ``WARM_UP`` seconds of log come before ``start``."""
    dates = DateDetector(spec.datepattern)
    with path.open("rb") as f:
        f.seek(start)
        first = f.readline().decode("utf-8", "replace")
        m = dates.match(first)
        if m is None:
            return max(0, start - (4 << 20))  # no date: a generous number of bytes instead
        target = m.time - WARM_UP
        pos = start
        step = 1 << 16
        while pos > 0:
            pos = max(0, pos - step)
            line_at = _line_start(f, pos)
            f.seek(line_at)
            d = dates.match(f.readline().decode("utf-8", "replace"))
            if d is not None and d.time <= target:
                return line_at
            step *= 2
        return 0


def run_test(
    path: Path,
    spec: FilterSpec,
    *,
    mode: str = "",
    usedns: str = "raw",
    workers: int = 0,
) -> TestResult:
    """Run the filter over the whole file, on several worker processes when it is large."""
    begin = time.perf_counter()
    size = path.stat().st_size if path.exists() else 0
    n = workers or os.cpu_count() or 1
    if mode == "missed" or n < 2 or size < PARALLEL_FROM:
        result = scan_range(path, spec, mode=mode, usedns=usedns)
    else:
        result = _parallel(path, spec, size, n, mode, usedns)
    result.seconds = time.perf_counter() - begin
    return result


def _parallel(
    path: Path, spec: FilterSpec, size: int, n: int, mode: str, usedns: str
) -> TestResult:
    """Parts 2..n in worker processes, part 1 in this process meanwhile; merge in order."""
    with path.open("rb") as f:
        cuts = sorted({_line_start(f, size * i // n) for i in range(n)} | {size})
    parts = list(itertools.pairwise(cuts))
    jobs = []
    for a, b in parts[1:]:
        job = {
            "spec": spec_json(spec),
            "path": str(path),
            "start": a,
            "end": b,
            "warm": warm_start(path, spec, a),
            "mode": mode,
            "usedns": usedns,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "stockade.parts.logs.test_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        jobs.append(proc)
    outputs: list[list[str]] = [[] for _ in jobs]

    def collect(i: int) -> None:
        stdout = jobs[i].stdout
        assert stdout is not None
        outputs[i] = stdout.read().splitlines()

    threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    total = scan_range(path, spec, start=parts[0][0], end=parts[0][1], mode=mode, usedns=usedns)
    total.workers = len(parts)
    for t in threads:
        t.join()
    base = total.lines
    for proc, lines in zip(jobs, outputs, strict=True):
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait() != 0 or not lines:
            raise UsageError(f"a worker of logs test failed: {err.strip().splitlines()[-1:]}")
        summary = json.loads(lines[-1])
        part = TestResult(
            summary["lines"],
            summary["matched"],
            summary["ignored"],
            {int(k): v for k, v in summary["per_regex"].items()},
        )
        for line in lines[:-1]:
            rel, rest = line.split("\t", 1)
            total.output.append(f"{int(rel) + base}\t{rest}")
        total.add(part)
        base += part.lines
    return total
