"""The pure pieces of notifications: messages, syslog and CEF formatting (fuzzed), routing,
grouping, the rate cap, backoff, addresses."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from stockade.config.schema import ChannelConfig
from stockade.model import Alert, Severity
from stockade.responders.notify.address import parse_host_port
from stockade.responders.notify.formats import cef, frame, rfc5424, sd_value, truncate
from stockade.responders.notify.grouping import Grouper, RateBucket, backoff, cap
from stockade.responders.notify.message import build
from stockade.responders.notify.routing import routes
from tests.notify.receivers import parse_rfc5424


def alert(i: int = 1, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "part": "logs",
        "kind": "ban",
        "subject": f"192.0.2.{i % 250}",
        "severity": Severity.MEDIUM,
        "detail": {"message": f"banned 192.0.2.{i % 250}"},
        "host": "gw",
        "time": 1_764_000_000.0 + i,
        "id": i,
    }
    fields.update(kw)
    return Alert(**fields)


# -- messages ------------------------------------------------------------------------------


def test_a_summary_counts_by_kind_and_severity_and_keeps_a_sample() -> None:
    alerts = [alert(i) for i in range(5000)]
    alerts += [
        alert(6000 + i, part="files", kind="file-added", severity=Severity.HIGH) for i in range(3)
    ]
    m = build(alerts, "gw")
    assert m.count == 5003
    assert m.single is None
    assert m.severity == Severity.HIGH
    assert m.by_kind == (("logs", "ban", 5000), ("files", "file-added", 3))
    assert m.by_severity == (("high", 3), ("medium", 5000))
    assert len(m.sample) == 10
    assert m.title == "[stockade gw] 5003 alerts, worst high: 5000 logs/ban, 3 files/file-added"
    assert "   5000  logs/ban" in m.text()
    data = m.to_json()
    assert data["count"] == 5003 and len(data["alerts"]) == 10
    assert m.placeholders()["kind"] == "summary"


def test_a_single_alert_message() -> None:
    m = build([alert(4)], "gw")
    assert m.single is not None
    assert m.title == "[stockade gw] medium: banned 192.0.2.4"
    assert m.placeholders() == {
        "severity": "medium",
        "part": "logs",
        "kind": "ban",
        "subject": "192.0.2.4",
        "message": "banned 192.0.2.4",
        "count": "1",
        "host": "gw",
    }


def test_a_message_needs_an_alert() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build([], "gw")


# -- syslog and CEF -------------------------------------------------------------------------


def test_rfc5424_layout() -> None:
    line = rfc5424(build([alert(3)], "gw"), facility="local3", procid=42, now=1_764_000_000.5)
    assert line == (
        "<156>1 2025-11-24T16:00:00.500000Z gw stockade 42 ban "
        '[stockade@32473 count="1" severity="medium" part="logs" kind="ban" '
        'subject="192.0.2.3" id="3"] \ufeffbanned 192.0.2.3'
    )


def test_structured_data_escapes() -> None:
    assert sd_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    text = rfc5424(build([alert(subject='x"]\\y')], "gw"), now=0)
    assert parse_rfc5424(text)["sd"]["stockade@32473"]["subject"] == 'x"]\\y'


def split_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """The seven header fields (unescaped) and the extension of a CEF record."""
    fields: list[str] = []
    cur = ""
    i = 0
    while len(fields) < 7:
        c = text[i]
        if c == "\\":
            cur += text[i + 1]
            i += 2
            continue
        if c == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    ext: dict[str, str] = {}
    for m in re.finditer(r"(\w+)=((?:[^\\=]|\\.)*?)(?= \w+=|$)", text[i:]):
        ext[m[1]] = re.sub(r"\\(.)", lambda e: {"n": "\n", "r": "\r"}.get(e[1], e[1]), m[2])
    return fields, ext


def test_cef_escapes_pipes_and_equals() -> None:
    a = alert(kind="odd|kind", subject="k=v\\w", detail={"message": "line1\nline2|x"})
    out = cef(build([a], "gw"))
    header, ext = split_cef(out)
    assert header[:3] == ["CEF:0", "stockade", "stockade"]
    assert header[4] == "logs/odd|kind"
    assert header[6] == "5"
    assert ext["cs1"] == "k=v\\w"
    assert ext["cn1"] == "1"
    assert "\n" not in out
    _, ext = split_cef(cef(build([alert(subject="a\r\nb\rc")], "gw")))
    assert ext["cs1"] == "a\r\nb\rc"


def test_frame_and_truncate() -> None:
    assert frame(b"hello") == b"5 hello"
    assert truncate("aé".encode() * 3, 4) == "aé".encode() + b"a"  # not half a character
    assert truncate(b"short", 10) == b"short"


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    part=texts,
    kind=texts,
    subject=texts,
    host=texts,
    message=texts,
    severity=st.sampled_from(list(Severity)),
    many=st.integers(1, 4),
    body=st.sampled_from(["plain", "json", "cef"]),
)
def test_fuzz_any_alert_makes_a_well_formed_syslog_message(
    part: str, kind: str, subject: str, host: str, message: str, severity: Severity,
    many: int, body: Any,
) -> None:  # fmt: skip
    alerts = [
        alert(
            i, part=part, kind=kind, subject=subject, severity=severity, detail={"message": message}
        )
        for i in range(many)
    ]
    m = build(alerts, host)
    text = rfc5424(m, body_format=body, now=1_764_000_000.0)
    assert "\n" not in text.split("\ufeff")[0]
    got = parse_rfc5424(text)
    assert got["severity"] == {4: 2, 3: 3, 2: 4, 1: 5, 0: 6}[severity]
    sd = got["sd"]["stockade@32473"]
    assert sd["count"] == str(many)
    if many == 1:
        shown = re.sub(r"[\x00-\x1f\x7f]", "\ufffd", subject)
        assert sd["subject"] == shown and sd["part"] == re.sub(r"[\x00-\x1f\x7f]", "\ufffd", part)
    if body == "json":
        assert json.loads(got["msg"])["count"] == many
    if body == "cef":
        header, ext = split_cef(got["msg"])
        assert header[6] == str({4: 10, 3: 8, 2: 5, 1: 3, 0: 1}[severity])
        assert ext["cnt"] == str(many)
        if many == 1:
            assert ext["cs1"] == subject
        assert "\n" not in got["msg"]


# -- routing -------------------------------------------------------------------------------

CHANNELS = TypeAdapter(list[ChannelConfig])


def test_routing_by_severity_and_part() -> None:
    channels = CHANNELS.validate_python(
        [
            {"type": "webhook", "name": "all", "url": "http://127.0.0.1/", "min_severity": "info"},
            {
                "type": "webhook",
                "name": "urgent",
                "url": "http://127.0.0.1/",
                "min_severity": "high",
            },
            {"type": "webhook", "name": "files", "url": "http://127.0.0.1/", "parts": ["files"]},
        ]
    )
    a = [
        alert(1, severity=Severity.LOW),
        alert(2, severity=Severity.CRITICAL),
        alert(3, part="files", severity=Severity.MEDIUM),
        alert(4, part="files", severity=Severity.INFO),
    ]
    assert routes(a, channels) == [
        ("all", 1),
        ("all", 2),
        ("urgent", 2),
        ("all", 3),
        ("files", 3),
        ("all", 4),
    ]


# -- grouping, rate, backoff ---------------------------------------------------------------


def test_a_quiet_channel_sends_each_alert_at_once() -> None:
    g = Grouper(window=60, threshold=3)
    assert g.plan([1], 0) == [[1]]
    assert g.plan([2], 10) == [[2]]
    assert g.plan([], 70) == []
    assert g.plan([3], 80) == [[3]]  # a new window


def test_a_burst_becomes_threshold_messages_and_one_summary() -> None:
    g = Grouper(window=60, threshold=3)
    assert g.plan([1, 2], 0) == [[1], [2]]
    held = list(range(3, 5003))
    assert g.plan(held, 1) == [[3]]
    rest = held[1:]
    assert g.plan(rest, 30) == []  # held
    assert g.next_wakeup() == 60
    assert g.plan([*rest, 9999], 60) == [[*rest, 9999]]
    assert g.plan([10000], 61) == [[10000]]  # the next window starts afresh


def test_threshold_zero_groups_everything_even_one() -> None:
    g = Grouper(window=10, threshold=0)
    assert g.plan([1], 0) == []
    assert g.plan([1], 10) == [[1]]


def test_window_zero_never_groups() -> None:
    assert Grouper(0, 0).plan([1, 2, 3], 0) == [[1], [2], [3]]


def test_cap_folds_the_overflow_into_the_last_message() -> None:
    msgs = [[1], [2], [3], [4, 5]]
    assert cap(msgs, None) == msgs
    assert cap(msgs, 4) == msgs
    assert cap(msgs, 2) == [[1], [2, 3, 4, 5]]
    assert cap(msgs, 1) == [[1, 2, 3, 4, 5]]
    assert cap(msgs, 0) == []


def test_rate_bucket_refills() -> None:
    b = RateBucket(limit=2, period=60, now=0)
    assert b.available(0) == 2
    b.take(2)
    assert b.available(1) == 0
    assert b.available(30) == 1
    assert b.available(1000) == 2
    assert RateBucket(0, 60, 0).available(0) is None


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [backoff(n, 5, 60) for n in range(6)] == [0, 5, 10, 20, 40, 60]
    assert backoff(10_000, 5, 3600) == 3600


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=40), st.integers(0, 5), st.integers(1, 30))
def test_fuzz_grouping_never_loses_or_duplicates(
    arrivals: list[int], threshold: int, window: int
) -> None:
    """Whatever arrives is sent exactly once, and a window costs at most threshold + 1 messages."""
    g = Grouper(window=window, threshold=threshold)
    pending: list[int] = []
    sent: list[int] = []
    messages = 0
    serial = 0
    for now, n in enumerate([*arrivals, *[0] * (window + 2)]):
        pending += range(serial, serial + n)
        serial += n
        for m in g.plan(list(pending), float(now)):
            messages += 1
            sent += m
            pending = [p for p in pending if p not in m]
    assert sorted(sent) == list(range(serial))
    assert not pending


def test_a_restart_takes_the_window_up_again() -> None:
    g = Grouper(window=60, threshold=2)
    assert g.plan([1, 2, 3], 0) == [[1], [2]]
    again = Grouper(window=60, threshold=2)
    assert again.restore(g.state(), 5)
    assert again.plan([3, 4], 5) == []  # still held: no third single in this window
    assert again.plan([3, 4], 60) == [[3, 4]]
    fresh = Grouper(window=60, threshold=2)
    assert fresh.restore(again.state(), 61) and fresh.plan([5], 61) == [[5]]


def test_restore_shortens_a_window_longer_than_the_setting() -> None:
    g = Grouper(window=600, threshold=1)
    g.plan([1, 2], 0)
    shorter = Grouper(window=10, threshold=1)
    assert shorter.restore(g.state(), 5)
    assert shorter.next_wakeup() == 15


@pytest.mark.parametrize(
    "text",
    ["", "null", "[]", "{}", '{"window_end": "x", "sent": 1}', '{"window_end": 5, "sent": -1}',
     '{"window_end": NaN, "sent": 1}', '{"window_end": 5, "sent": true}', '{"sent": 1}', "{"],
)  # fmt: skip
def test_restore_refuses_what_is_not_a_window(text: str) -> None:
    g = Grouper(window=60, threshold=2)
    assert not g.restore(text, 0)
    assert g.plan([1, 2, 3], 0) == [[1], [2]]  # a fresh window


@given(st.text(max_size=80))
def test_fuzz_restore_never_raises(text: str) -> None:
    g = Grouper(window=60, threshold=2)
    if g.restore(text, 100.0):
        assert g.window_end is None or g.window_end <= 160
    assert g.plan([1], 100.0) in ([], [[1]])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.booleans()), max_size=40),
    st.integers(0, 5),
    st.integers(1, 30),
)
def test_fuzz_restarts_change_nothing(
    steps: list[tuple[int, bool]], threshold: int, window: int
) -> None:
    """A grouper restarted from its kept state (before any step) plans exactly what one that
    never stopped plans: no extra single messages in a window, nothing lost or sent twice."""
    steady = Grouper(window=window, threshold=threshold)
    g = Grouper(window=window, threshold=threshold)
    pending: list[int] = []
    sent: list[int] = []
    serial = 0
    for now, (n, restart) in enumerate([*steps, *[(0, False)] * (window + 2)]):
        if restart:
            kept = g.state()
            g = Grouper(window=window, threshold=threshold)
            assert g.restore(kept, float(now))
        pending += range(serial, serial + n)
        serial += n
        planned = g.plan(list(pending), float(now))
        assert planned == steady.plan(list(pending), float(now))
        for m in planned:
            sent += m
            pending = [p for p in pending if p not in m]
    assert sorted(sent) == list(range(serial))


# -- addresses -------------------------------------------------------------------------------


def test_host_port() -> None:
    assert parse_host_port("192.0.2.7:6514", 514) == ("192.0.2.7", 6514)
    assert parse_host_port("[2001:db8::7]:6514", None) == ("2001:db8::7", 6514)
    assert parse_host_port("logs.example.org", 514) == ("logs.example.org", 514)
    for bad in ("", "a b:1", "host:0", "host:99999", "[::1", "http://x"):
        with pytest.raises(ValueError):
            parse_host_port(bad, 514)
    with pytest.raises(ValueError, match="give the port"):
        parse_host_port("host", None)
