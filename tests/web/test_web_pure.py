"""The dashboard's pure parts: listen addresses, filter times, failed-login lines, the failure
limiter, alert filters, the timeline and the chart's bars; malformed input and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.model import Alert, BanRecord, Severity
from stockade.web.auth import FailureLimiter, hash_password, valid_user_name, verify_password
from stockade.web.faillog import FAILREGEX, failure_line
from stockade.web.listen import parse_listen
from stockade.web.timeparse import parse_time
from stockade.web.views import AlertFilter, chart_bars, filter_alerts, timeline, top_offenders

HOST_RE = re.compile(FAILREGEX.replace("<HOST>", r"(?P<host>\S+)"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8470", ("127.0.0.1", 8470)),
        ("[::1]:80", ("::1", 80)),
        (":9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_listen_good(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("8470", "expected ADDR:PORT"),
        ("localhost:80", "is not an IP address"),
        ("::1:80", "in brackets"),
        ("1.2.3.4:http", "0-65535"),
        ("1.2.3.4:70000", "0-65535"),
        ("[nonsense]:1", "is not an IP address"),
    ],
)
def test_listen_bad(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_listen(text)


@given(st.text(max_size=40))
def test_listen_fuzz_raises_only_value_error(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ValueError:
        return
    assert 0 <= port <= 65535 and host


def test_parse_time() -> None:
    now = 1_800_000_000.0
    assert parse_time("1700000000", now) == 1_700_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("2026-11-26T18:00:00+00:00", now) == 1795716000.0
    for bad in ("", "yesterday", "26/11/2026"):
        with pytest.raises(ValueError):
            parse_time(bad, now)


@given(st.text(max_size=30))
def test_parse_time_fuzz(text: str) -> None:
    try:
        parse_time(text, 1e9)
    except ValueError as e:
        assert str(e)


@given(user=st.text(max_size=100), octets=st.tuples(*[st.integers(0, 255)] * 4))
def test_failure_lines_are_one_line_with_the_real_host(user: str, octets: tuple[int, ...]) -> None:
    addr = ".".join(map(str, octets))
    line = failure_line(user, addr, 1_795_000_000.0, 42)
    assert line.endswith("\n") and line.count("\n") == 1
    m = HOST_RE.match(line[19:].rstrip("\n"))
    assert m is not None and m.group("host") == addr  # a chosen user name cannot forge it


def test_failure_limiter_window() -> None:
    clock = [0.0]
    lim = FailureLimiter(3, 60.0, now=lambda: clock[0])
    for _ in range(3):
        assert lim.retry_after("a") == 0
        lim.failed("a")
    assert lim.retry_after("a") == pytest.approx(60.0)
    assert lim.retry_after("b") == 0  # per address
    clock[0] = 30.0
    assert lim.retry_after("a") == pytest.approx(30.0)
    clock[0] = 60.5
    assert lim.retry_after("a") == 0  # the first failures left the window
    lim.failed("a")
    lim.succeeded("a")
    assert lim.retry_after("a") == 0


def test_passwords() -> None:
    h = hash_password("s3cret-pass")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "s3cret-pass")
    assert not verify_password(h, "s3cret-pasS")
    assert not verify_password(None, "anything")
    assert not verify_password("not a hash", "anything")
    assert valid_user_name("admin") and valid_user_name("ops.team@example")
    assert not valid_user_name("") and not valid_user_name("a b") and not valid_user_name("x" * 65)


def _alert(t: float, part: str = "files", sev: Severity = Severity.HIGH, msg: str = "") -> Alert:
    return Alert(part, "changed", f"/x/{t}", sev, {"message": msg}, time=t)


def test_alert_filter() -> None:
    alerts = [
        _alert(10, "files", Severity.LOW, "mode changed"),
        _alert(20, "logs", Severity.HIGH, "banned 192.0.2.1"),
        _alert(30, "sockets", Severity.CRITICAL),
    ]
    assert filter_alerts(alerts, AlertFilter(since=15, until=25)) == [alerts[1]]
    assert filter_alerts(alerts, AlertFilter(severity=Severity.HIGH)) == alerts[1:]
    assert filter_alerts(alerts, AlertFilter(part="files")) == alerts[:1]
    assert filter_alerts(alerts, AlertFilter(text="BANNED")) == [alerts[1]]
    assert filter_alerts(alerts, AlertFilter()) == alerts


@given(st.lists(st.floats(0, 999.999), max_size=50), st.integers(1, 48))
def test_timeline_counts_every_alert_in_range_once(times: list[float], n: int) -> None:
    t = timeline([_alert(x) for x in times], 0, 1000, n)
    assert len(t["buckets"]) == n
    assert sum(sum(v) for v in t["severity"].values()) == len(times)
    assert sum(t["part"]["files"]) == len(times)


def test_timeline_ignores_alerts_outside_and_empty_ranges() -> None:
    t = timeline([_alert(-1), _alert(1000), _alert(500)], 0, 1000, 10)
    assert t["severity"]["high"] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert timeline([_alert(1)], 5, 5, 3)["buckets"] == []


def test_chart_bars_stack_and_scale() -> None:
    bars = chart_bars({"low": [1, 0, 2], "high": [1, 0, 2]}, height=100)
    assert [b["total"] for b in bars] == [2, 0, 4]
    tallest = bars[2]["segments"]
    assert [s["name"] for s in tallest] == ["low", "high"]
    assert tallest[-1]["y"] == 0 and sum(s["h"] for s in tallest) == 100
    assert bars[1]["segments"] == []
    assert chart_bars({}) == []


def test_top_offenders() -> None:
    def ban(addr: str, t: float) -> BanRecord:
        return BanRecord(addr, "sshd", t, None, failures=3)

    out = top_offenders([ban("a", 1), ban("b", 2), ban("a", 3), ban("c", 4)], n=2)
    assert [(o["address"], o["bans"], o["failures"]) for o in out] == [("a", 2, 6), ("c", 1, 3)]
