"""fail2ban time strings: the grammar of MyTime.str2seconds, evaluated without eval."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stockade.detectors.logs.f2b.timestr import evaluate, to_expression, to_seconds

F2B_PACKAGE = Path("/usr/lib/python3/dist-packages/fail2ban")

DAY = 86400.0
CASES = {
    "600": 600.0,
    "3600": 3600.0,
    "-1": -1.0,
    "+5": 5.0,
    "10m": 600.0,
    "10 m": 600.0,
    "1h 30m": 5400.0,
    "1 h 30 m": 5400.0,
    "0d 1h 30m": 5400.0,
    "1hour+30min": 5400.0,
    "1d12h": 1.5 * DAY,
    "48h": 2 * DAY,
    "1.5h": 5400.0,
    ".5d": DAY / 2,
    "1d": DAY,
    "1D": DAY,
    "2 days": 2 * DAY,
    "1w": 7 * DAY,
    "2 weeks": 14 * DAY,
    "1mo": 2629800.0,
    "1mon": 2629800.0,
    "6 months": 15778800.0,
    "1y": 31557600.0,
    "1year-6mo": 15778800.0,
    "1M": 60.0,  # m is minutes in any case; months are mo/mon
    "1s": 1.0,
    "1sec": 1.0,
    "3d 2h 1m 5s": 3 * DAY + 7200 + 60 + 5,
    "1h-30m": 1800.0,
    "1h/2": 1800.0,
    "7/2": 3.5,
    "2*3h": 21600.0,
    "(1+2)*60": 180.0,
    "1 2": 3.0,  # blanks between numbers add up, as in fail2ban
}
BAD = ["", "  ", "abc", "1x", "1hr", "1mins", "1e3", "1h (2)", "0x10", "1 2 3", "5/0", "1+", "(1"]


@pytest.mark.parametrize(("text", "seconds"), sorted(CASES.items()))
def test_time_strings(text: str, seconds: float) -> None:
    assert to_seconds(text) == seconds


@pytest.mark.parametrize("text", BAD)
def test_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time"):
        to_seconds(text)


def test_expression_is_what_fail2ban_evaluates() -> None:
    assert to_expression("1d12h") == "1*86400+12*3600"
    assert to_expression("1y") == "1*31557600.0"


def test_evaluate_is_plain_arithmetic() -> None:
    assert evaluate("1") == 1.0
    assert evaluate("-(2 + 3) * 4 / 8") == -2.5
    for bad in ("__import__('os')", "2**3", "1 if 1 else 2", "a"):
        with pytest.raises(ValueError):
            evaluate(bad)


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # fail2ban's eval warns about "1h (2)"
def test_same_as_fail2ban() -> None:
    """Every case above gives what fail2ban's own str2seconds gives."""
    if not F2B_PACKAGE.is_dir():
        pytest.skip("fail2ban is not installed")
    if str(F2B_PACKAGE.parent) not in sys.path:
        sys.path.append(str(F2B_PACKAGE.parent))
    from fail2ban.server.mytime import MyTime  # type: ignore[import-not-found]

    for text in CASES:
        assert float(MyTime.str2seconds(text)) == to_seconds(text), text
    for text in BAD:
        with pytest.raises(Exception):  # noqa: B017 - fail2ban raises whatever eval raises
            MyTime.str2seconds(text)
