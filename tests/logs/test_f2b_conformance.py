"""Conformance with fail2ban: every annotated sample line of every shipped filter.

For each line, stockade must agree with the annotation on whether it is a failure, on the host
(the failure id) and on the time. The test prints every disagreement with its reason and
requires agreement on at least 99% of the annotated lines. Cases where fail2ban itself is wrong
are listed in the README.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.logs.f2b_samples import (
    CONFIG,
    LOGS,
    TEST_NOW,
    TEST_NOW_STR,
    Sample,
    TestTZ,
    constraint_holds,
    filter_names,
    local_epoch,
    samples,
)

pytestmark = pytest.mark.skipif(
    not LOGS.is_dir(), reason="fail2ban is not installed (scripts/test installs it)"
)

REQUIRED = 0.99


def _same_host(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_network(str(a), strict=False) == ipaddress.ip_network(
            str(b), strict=False
        )
    except ValueError:
        return str(a) == str(b)


def _make(name: str, basedir: Any, opts: dict[str, Any]) -> Any:
    from stockade.detectors.logs.engine import FilterSpec, LineFilter
    from stockade.detectors.logs.f2b.filterconf import load_filter

    fopts = {k: str(v) for k, v in opts.items() if not k.startswith("test.")}
    fdef = load_filter(basedir, name, fopts)
    spec = FilterSpec(
        fdef.name, fdef.failregex, fdef.ignoreregex, fdef.prefregex, fdef.datepattern, fdef.maxlines
    )
    return LineFilter(spec, usedns="raw", check_all=True, raw_hosts=True, now=lambda: TEST_NOW)


def _judge(flt: Any, sample: Sample, opts: dict[str, Any]) -> str | None:
    """None when stockade agrees with the annotation, else the reason it does not."""
    line = sample.line
    if opts.get("logtype") == "journal":
        line = opts.get("test.prefix-line", "") + line
        found = flt.process(line, when=TEST_NOW, when_text=TEST_NOW_STR)
    else:
        found = flt.process(line)
    real = [f for f in found if f.fid is not None and not f.nofail]
    expect = sample.expect
    want = bool(expect.get("match", False))
    if not real:
        return "not matched, but the annotation says it is a failure" if want else None
    if not want:
        return f"matched (regex {real[0].regex}, host {real[0].fid}) but the annotation says no failure"
    if len(real) > 1:
        return f"{len(real)} regexes matched: {[f.regex for f in real]}"
    f = real[0]
    if "host" in expect:
        host = f.fields.get("host") or f.fid
        if not _same_host(host, expect["host"]):
            return f"host {host!r}, expected {expect['host']!r}"
    if expect.get("time") is not None:
        want_t = local_epoch(expect["time"])
        if f.time is None or abs(f.time - want_t) > 1e-6:
            return f"time {f.time}, expected {want_t} ({expect['time']})"
    return None


@dataclass
class Outcome:
    checked: int = 0
    lines: list[str] = field(default_factory=list)


def run_all(select: Callable[[Sample], bool] = lambda _: True) -> Outcome:
    """Walk every sample of every filter; return how many were checked and the disagreements."""
    out = Outcome()
    with TestTZ():
        for name, basedir in filter_names():
            instances: dict[str, Any] = {}
            runs: list[tuple[str, dict[str, Any]]] = []
            for runs_now, sample in samples(name):
                if sample is None:
                    runs = runs_now
                    for run, opts in runs:
                        if run not in instances:
                            try:
                                instances[run] = _make(name, basedir, opts)
                            except Exception as e:  # reported as disagreements below
                                instances[run] = e
                    continue
                for run, opts in runs:
                    cons = sample.expect.get("constraint")
                    if cons and not constraint_holds(cons, name, opts):
                        continue
                    flt = instances[run]
                    if isinstance(flt, Exception):
                        if select(sample):
                            out.checked += 1
                            out.lines.append(
                                f"{sample.file}:{sample.lineno} [{run}]: filter not loaded: {flt}"
                            )
                        continue
                    try:
                        why = _judge(flt, sample, opts)  # every sample runs: filters keep state
                    except Exception as e:
                        why = f"error: {type(e).__name__}: {e}"
                    if not select(sample):
                        continue
                    out.checked += 1
                    if why:
                        out.lines.append(
                            f"{sample.file}:{sample.lineno} [{run}]: {why}\n    {sample.line[:200]}"
                        )
    return out


def test_fail2ban_samples_agree() -> None:
    outcome = run_all()
    checked, problems = outcome.checked, outcome.lines
    agreed = checked - len(problems)
    print(
        f"\nfail2ban sample conformance: {agreed}/{checked} annotated lines agree "
        f"({100.0 * agreed / max(checked, 1):.2f}%), using {CONFIG}/filter.d"
    )
    for p in problems:
        print("  DISAGREE", p)
    assert checked > 1000
    assert agreed / checked >= REQUIRED
