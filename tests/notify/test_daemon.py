"""Notifications inside a real ``stockade run``: delivery and routing, a burst of thousands of
alerts grouped into a few messages, and redelivery after the receiver was down and stockade
was killed and started again."""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

import tomli_w

from stockade.model import Alert, Severity
from stockade.store import SqliteStore
from tests.conftest import Instance
from tests.notify.receivers import (
    HttpReceiver,
    Pki,
    SmtpReceiver,
    SyslogReceiver,
    free_port,
)


def configure(instance: Instance, *channels: dict[str, Any]) -> None:
    data = {
        "files": {"enabled": False},
        "logs": {"enabled": False},
        "sockets": {"enabled": False},
        "scan": {"enabled": False},
        "notify": {"poll": "100ms", "channels": list(channels)},
    }
    instance.config.write_text(tomli_w.dumps(data))


def add_alerts(instance: Instance, alerts: list[Alert]) -> list[int]:
    store = SqliteStore(instance.state / "stockade.db")
    try:
        return store.add_alerts(alerts)
    finally:
        store.close()


def outbox(instance: Instance, pending: bool = True) -> list[Any]:
    store = SqliteStore(instance.state / "stockade.db")
    try:
        return store.list_notifications(pending=pending)
    finally:
        store.close()


def ban(i: int) -> Alert:
    address = f"198.51.{i // 250}.{i % 250 + 1}"
    return Alert(
        part="logs",
        kind="ban",
        subject=address,
        severity=Severity.MEDIUM,
        detail={"message": f"sshd: banned {address} for 10m"},
    )


def started(d: Any, channels: int) -> None:
    d.wait_for(rf"notify: {channels} channel\(s\)")


def test_delivery_and_routing_by_severity_and_part(
    instance: Instance, daemon: Any, http: HttpReceiver
) -> None:
    syslog = SyslogReceiver("tcp")
    try:
        configure(
            instance,
            {"type": "syslog", "name": "siem", "address": syslog.address, "transport": "tcp",
             "format": "json", "min_severity": "info"},
            {"type": "webhook", "name": "chat", "url": http.url, "min_severity": "high",
             "parts": ["files"]},
        )  # fmt: skip
        d = daemon(instance)
        started(d, 2)
        add_alerts(
            instance,
            [
                Alert(
                    "files", "file-changed", "/usr/bin/ls", Severity.HIGH, {"message": "ls changed"}
                ),
                Alert("logs", "ban", "192.0.2.9", Severity.LOW, {"message": "banned 192.0.2.9"}),
                Alert("files", "file-added", "/tmp/x", Severity.MEDIUM, {"message": "x added"}),
            ],
        )
        got = syslog.inbox.wait(3)
        (hook,) = http.inbox.wait(1)
        assert sorted(m["sd"]["stockade@32473"]["subject"] for m in got) == [
            "/tmp/x",
            "/usr/bin/ls",
            "192.0.2.9",
        ]
        assert hook["count"] == 1 and hook["alerts"][0]["subject"] == "/usr/bin/ls"
        d.wait_for(r"notify chat: sent alert")
        time.sleep(0.5)  # nothing else comes
        assert len(http.inbox.items) == 1 and len(syslog.inbox.items) == 3
        assert outbox(instance) == []
        assert len(outbox(instance, pending=False)) == 4
        assert d.stop() == 0
    finally:
        syslog.close()


def test_a_burst_of_5000_alerts_is_a_few_mails(instance: Instance, daemon: Any, pki: Pki) -> None:
    smtp = SmtpReceiver(pki)
    try:
        configure(
            instance,
            {"type": "email", "name": "mail", "host": "127.0.0.1", "port": smtp.port,
             "ca_file": str(pki.ca_file), "sender": "stockade@example.org",
             "recipients": ["admin@example.org"], "group_window": "2s", "group_threshold": 3},
        )  # fmt: skip
        d = daemon(instance)
        started(d, 1)
        add_alerts(instance, [ban(i) for i in range(5000)])
        d.wait_for(r"notify mail: sent summary of \d+ alerts")
        time.sleep(1)
        mails = list(smtp.inbox.items)
        assert outbox(instance) == []
    finally:
        smtp.close()
    assert 2 <= len(mails) <= 4, [m["data"][:300] for m in mails]
    assert all(m["tls"] for m in mails)
    parsed = [email.message_from_string(m["data"], policy=email.policy.default) for m in mails]
    counts = [int(p["X-Stockade-Count"]) for p in parsed]
    assert sum(counts) == 5000
    (summary,) = [p for p in parsed if p["X-Stockade-Count"] != "1"]
    assert "alerts, worst medium: " in summary["Subject"]
    body = summary.get_content()
    assert "logs/ban" in body
    assert "the first 10:" in body
    assert d.stop() == 0


def test_redelivery_after_the_receiver_was_down_and_stockade_restarted(
    instance: Instance, daemon: Any
) -> None:
    port = free_port()
    configure(
        instance,
        {"type": "webhook", "name": "hook", "url": f"http://127.0.0.1:{port}/hook",
         "retry_min": "100ms", "retry_max": "300ms", "max_attempts": 3, "group_window": "0s"},
    )  # fmt: skip
    d = daemon(instance)
    started(d, 1)
    (first,) = add_alerts(instance, [ban(1)])
    d.wait_for(r"notify hook: delivery failed \(attempt 1\)")
    d.wait_for(r"notify hook: 1 alert\(s\) failed 3 times, kept in the outbox")
    d.proc.kill()  # no clean stop
    d.proc.wait()
    (pending,) = outbox(instance)
    assert pending.alert.id == first and pending.attempts >= 3
    assert "ConnectError" in pending.last_error
    # an alert stored while stockade is down is not missed either
    (second,) = add_alerts(instance, [ban(2)])
    http = HttpReceiver(port=port)
    try:
        d2 = daemon(instance)
        started(d2, 1)
        got = http.inbox.wait(2)
        assert sorted(b["alerts"][0]["id"] for b in got) == [first, second]
        d2.wait_for("notify hook: sent alert", after=0)
        time.sleep(0.5)
        assert len(http.inbox.items) == 2  # each once
        assert outbox(instance) == []
        assert d2.stop() == 0
    finally:
        http.close()


def test_a_rate_cap_folds_the_rest_into_one_message(
    instance: Instance, daemon: Any, http: HttpReceiver
) -> None:
    configure(
        instance,
        {"type": "webhook", "name": "hook", "url": http.url, "group_window": "0s",
         "rate_limit": 3, "rate_period": "1h"},
    )  # fmt: skip
    d = daemon(instance)
    started(d, 1)
    add_alerts(instance, [ban(i) for i in range(40)])
    got = http.inbox.wait(3)
    time.sleep(0.5)
    assert len(http.inbox.items) == 3
    assert sorted(b["count"] for b in got) == [1, 1, 38]
    assert outbox(instance) == []
    assert d.stop() == 0


def test_first_start_does_not_send_the_history(
    instance: Instance, daemon: Any, http: HttpReceiver
) -> None:
    configure(instance, {"type": "webhook", "name": "hook", "url": http.url})
    add_alerts(instance, [ban(1), ban(2)])  # before notifications were set up
    d = daemon(instance)
    started(d, 1)
    d.wait_for("notify: first start")
    add_alerts(instance, [ban(3)])
    (body,) = http.inbox.wait(1)
    assert body["alerts"][0]["subject"] == ban(3).subject
    time.sleep(0.5)
    assert len(http.inbox.items) == 1
    assert d.stop() == 0


def test_a_restart_mid_burst_sends_no_more_singles_in_that_window(
    instance: Instance, daemon: Any, http: HttpReceiver
) -> None:
    configure(
        instance,
        {"type": "webhook", "name": "hook", "url": http.url, "group_window": "15s",
         "group_threshold": 3},
    )  # fmt: skip
    d = daemon(instance)
    started(d, 1)
    add_alerts(instance, [ban(i) for i in range(10)])
    assert [b["count"] for b in http.inbox.wait(3)] == [1, 1, 1]
    line = d.wait_for("notify hook: sent alert")
    for _ in range(2):  # all three marked sent (a kill before that would send one again)
        line = d.wait_for("notify hook: sent alert", after=d.lines.index(line) + 1)
    d.proc.kill()  # a crash during the attack
    d.proc.wait()
    d2 = daemon(instance)
    started(d2, 1)
    add_alerts(instance, [ban(i) for i in range(10, 15)])
    d2.wait_for(r"notify hook: sent summary of 12 alerts")
    counts = [b["count"] for b in http.inbox.items]
    assert counts == [1, 1, 1, 12], counts  # the window's 3 singles were not granted again
    assert outbox(instance) == []
    assert d2.stop() == 0
