"""``stockade notify test CHANNEL`` and ``stockade notify queue``."""

from __future__ import annotations

import time

import tomli_w

from stockade.model import Alert, Severity
from stockade.store import SqliteStore
from tests.conftest import Instance
from tests.notify.receivers import HttpReceiver, free_port


def configure(instance: Instance, url: str) -> None:
    channels = [{"type": "webhook", "name": "hook", "url": url}]
    instance.config.write_text(tomli_w.dumps({"notify": {"channels": channels}}))


def test_notify_test_sends_through_the_channel(instance: Instance, http: HttpReceiver) -> None:
    configure(instance, http.url)
    r = instance.run("notify", "test", "hook")
    assert r.rc == 0, r.err
    assert r.out.strip() == "sent a test message through hook (webhook)"
    (body,) = http.inbox.wait(1)
    assert body["alerts"][0]["kind"] == "test"
    assert body["alerts"][0]["message"] == "stockade test message for channel hook"


def test_notify_test_errors_are_one_line(instance: Instance) -> None:
    configure(instance, f"http://127.0.0.1:{free_port()}/hook")
    r = instance.run("notify", "test", "hook")
    assert r.rc == 2 and r.one_line_error, r.err
    assert "notify test hook: not delivered: webhook http://127.0.0.1:" in r.err
    r = instance.run("notify", "test", "pager")
    assert r.rc == 2 and r.one_line_error
    assert "no channel 'pager' in notify.channels (hook)" in r.err


def test_notify_queue_shows_what_waits(instance: Instance) -> None:
    configure(instance, "http://127.0.0.1:9/hook")
    r = instance.run("notify", "queue")
    assert r.rc == 0 and r.out.strip() == "nothing waits to be delivered"
    store = SqliteStore(instance.state / "stockade.db")
    try:
        a, b = store.add_alerts(
            [
                Alert("logs", "ban", "192.0.2.1", Severity.MEDIUM),
                Alert("files", "file-added", "/tmp/x", Severity.HIGH),
            ]
        )
        now = time.time()
        store.route_alerts([("hook", a), ("hook", b)], now=now, state={"notify.cursor": str(b)})
        (first, _) = store.list_notifications()
        store.mark_failed([first.id], error="webhook: ConnectError", next_try=now + 60)
        store.mark_sent([first.id + 1], when=now)
    finally:
        store.close()
    r = instance.run("notify", "queue", "--json")
    assert r.rc == 0
    (row,) = r.json_lines()
    assert row["alert"] == a and row["attempts"] == 1
    assert row["last_error"] == "webhook: ConnectError" and row["sent"] is None
    r = instance.run("notify", "queue", "--all")
    lines = r.out.splitlines()
    assert lines[0].split() == [
        "ID",
        "CHANNEL",
        "ALERT",
        "KIND",
        "ATTEMPTS",
        "STATE",
        "LAST",
        "ERROR",
    ]
    assert "logs/ban" in lines[1] and "webhook: ConnectError" in lines[1]
    assert "files/file-added" in lines[2] and "sent " in lines[2]
