"""``stockade logs test``: run a filter over a log file, like fail2ban-regex."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from stockade.detectors.logs.engine import Failure, FilterSpec, LineFilter
from stockade.detectors.logs.f2b.filterconf import F2bConfigError, load_filter
from stockade.detectors.logs.regex import RegexError
from stockade.errors import UsageError

READ_SIZE = 1 << 20


@dataclass
class TestResult:
    lines: int = 0
    matched: int = 0  # lines with a failure
    ignored: int = 0  # lines matched as "not a failure" (F-NOFAIL) or by an ignoreregex
    per_regex: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def missed(self) -> int:
        return self.lines - self.matched - self.ignored


def resolve_filter(
    text: str, f2bdir: Path | None, *, datepattern: str | None = None, maxlines: int | None = None
) -> FilterSpec:
    """FILTER as ``logs test`` takes it: a fail2ban filter name (``sshd``, ``sshd[mode=ddos]``),
    the path of a filter file, or a failregex."""
    spec: FilterSpec | None = None
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


def read_blocks(path: Path, max_line: int = 1 << 24) -> Iterator[bytes]:
    """The file in blocks of whole lines (a line longer than ``max_line`` is cut)."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the log: {e.strerror}") from None
    with f:
        tail = b""
        while chunk := f.read(READ_SIZE):
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                tail = data if len(data) <= max_line else data[:max_line]
                continue
            tail = data[cut:]
            yield data[:cut]
        if tail:
            yield tail + b"\n"


def run_test(
    path: Path,
    spec: FilterSpec,
    *,
    on_line: Callable[[int, str, list[Failure]], None] | None = None,
    every_line: bool = False,
    usedns: str = "raw",
) -> TestResult:
    """Run the filter over the file; ``on_line`` sees every line when ``every_line``, else
    the lines that can matter (the prefilter skips the others)."""
    try:
        flt = LineFilter(spec, usedns=usedns, raw_hosts=True)
    except RegexError as e:
        raise UsageError(f"filter {spec.name}: {e}") from None
    if every_line:
        flt.prefilter = None
    result = TestResult()
    per = result.per_regex
    start = time.perf_counter()
    n = 1
    for block in read_blocks(path):
        for ln, line, found in flt.scan_block(block, n):
            if found:
                real = [f for f in found if f.fid is not None and not f.nofail]
                if real:
                    result.matched += 1
                    per[real[0].regex] = per.get(real[0].regex, 0) + 1
                else:
                    result.ignored += 1
            if on_line is not None:
                on_line(ln, line, found)
        n += block.count(b"\n")
    result.lines = n - 1
    result.seconds = time.perf_counter() - start
    return result
