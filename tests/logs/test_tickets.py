"""Failure counting (sliding findtime window) and growing ban times."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.detectors.logs.bantime import (
    FormulaError,
    Increment,
    ban_duration,
    compile_formula,
    parse_multipliers,
)
from stockade.detectors.logs.tickets import FailureCounter


def test_maxretry_within_findtime_bans() -> None:
    c = FailureCounter(maxretry=3, findtime=600)
    assert c.add("192.0.2.1", 0) is None
    assert c.add("192.0.2.1", 100) is None
    assert c.add("192.0.2.2", 150) is None
    d = c.add("192.0.2.1", 200, ["line 3"])
    assert d is not None and d.address == "192.0.2.1" and d.failures == 3
    assert (d.first, d.last) == (0, 200)
    assert c.add("192.0.2.1", 210) is None  # counting starts again after a ban


def test_window_slides() -> None:
    c = FailureCounter(maxretry=3, findtime=600)
    for t in (0, 500, 1000, 1500, 2000):  # never 3 within 600 s
        assert c.add("192.0.2.1", t) is None
    assert c.add("192.0.2.1", 2100) is not None  # 1500, 2000, 2100


def test_evidence_is_bounded() -> None:
    c = FailureCounter(maxretry=100, findtime=1e9, maxmatches=3)
    for i in range(99):
        c.add("a", i, [f"line {i}"])
    d = c.add("a", 99, ["line 99"])
    assert d is not None and d.matches == ("line 97", "line 98", "line 99")


def test_expire_forgets_quiet_addresses() -> None:
    c = FailureCounter(maxretry=5, findtime=60)
    c.add("a", 0)
    c.add("b", 100)
    assert c.expire(now=130) == 1 and len(c) == 1


def test_bantime_increment_default_formula() -> None:
    inc = Increment(enabled=True)
    assert [ban_duration(600, n, inc) for n in range(4)] == [600, 1200, 2400, 4800]
    assert ban_duration(600, 50, inc) == 600 * 2**20
    assert ban_duration(600, 3, Increment(enabled=True, maxtime=3000)) == 3000
    assert ban_duration(600, 3, Increment()) == 600  # off
    assert ban_duration(-1, 3, inc) == -1  # permanent stays permanent


def test_bantime_multipliers_and_formula() -> None:
    inc = Increment(enabled=True, multipliers=parse_multipliers("1 5 30 60"))
    assert [ban_duration(60, n, inc) for n in range(6)] == [60, 300, 1800, 3600, 3600, 3600]
    f = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"
    inc = Increment(enabled=True, formula=f, factor=1)
    assert ban_duration(60, 0, inc) == pytest.approx(60)
    assert ban_duration(60, 2, inc) == pytest.approx(60 * 2.718281828**2, rel=1e-6)
    assert ban_duration(60, 0, Increment(enabled=True, rndtime=10), rnd=lambda: 0.5) == 65


@pytest.mark.parametrize(
    "bad",
    [
        "__import__('os').system('id')",
        "ban.__class__",
        "open('/etc/passwd')",
        "[x for x in ()]",
        "lambda: 1",
        "ban.Time +",
        "os.getcwd()",
    ],
)
def test_formulas_cannot_run_code(bad: str) -> None:
    with pytest.raises(FormulaError):
        compile_formula(bad)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_formula_text_parses_or_is_refused(text: str) -> None:
    try:
        inc = Increment(enabled=True, formula=text)
    except (FormulaError, RecursionError, ValueError):
        return
    with contextlib.suppress(FormulaError, ArithmeticError, TypeError, ValueError, KeyError):
        ban_duration(60, 2, inc)


def test_huge_numbers_end_quickly() -> None:
    """Exponents and shifts cannot make numbers that take forever (or all memory) to compute."""
    for f in ("9**9**9**9", "ban.Time << 10**12", "10.0**400"):
        try:
            v = ban_duration(60, 1, Increment(enabled=True, formula=f))
        except (OverflowError, ArithmeticError):
            continue
        assert v < 1e300, f  # a shift is capped at 64 bits


def test_counts_survive_a_snapshot() -> None:
    c = FailureCounter(maxretry=3, findtime=600)
    c.add("a", 10, ["one"])
    c.add("a", 20, ["two"])
    c2 = FailureCounter(maxretry=3, findtime=600)
    c2.restore(c.snapshot())
    d = c2.add("a", 30, ["three"])
    assert d is not None and d.matches == ("one", "two", "three")
    c2.restore({"b": [["x"], []], "c": "garbage"})  # type: ignore[dict-item]
    assert len(c2) == 0
