"""The outbox in the SQLite store: routing and the cursor move together; retries and sent
marks; pruning; the migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stockade.model import Alert, Severity
from stockade.store import SqliteStore
from stockade.store.migrations import MIGRATIONS


def test_routes_and_cursor_are_written_together(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    (a,) = store.add_alerts([Alert("logs", "ban", "192.0.2.1", Severity.HIGH)])
    store.route_alerts([("mail", a), ("siem", a)], now=100.0, state={"notify.cursor": str(a)})
    assert store.get_state("notify.cursor") == str(a)
    assert [(i.channel, i.alert.subject) for i in store.list_notifications()] == [
        ("mail", "192.0.2.1"),
        ("siem", "192.0.2.1"),
    ]
    # a failure half-way leaves neither the rows nor the cursor
    with pytest.raises(sqlite3.IntegrityError):
        store.route_alerts([("mail", a), ("siem", None)], now=101.0, state={"notify.cursor": "99"})  # type: ignore[list-item]
    assert store.get_state("notify.cursor") == str(a)
    assert len(store.list_notifications()) == 2
    store.close()


def test_due_failed_sent_and_pruned(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ids = store.add_alerts(
        [Alert("files", "file-added", f"/x{i}", Severity.HIGH) for i in range(3)]
    )
    store.route_alerts([("mail", i) for i in ids], now=100.0, state={})
    rows = store.due_notifications("mail", now=100.0, limit=10)
    assert [r.alert.id for r in rows] == ids
    assert store.due_notifications("other", now=100.0, limit=10) == []
    store.mark_failed([rows[0].id], error="refused", next_try=200.0)
    store.mark_sent([rows[1].id], when=150.0)
    assert [r.alert.id for r in store.due_notifications("mail", now=160.0, limit=10)] == [ids[2]]
    later = store.due_notifications("mail", now=200.0, limit=1)
    assert [(r.alert.id, r.attempts, r.last_error) for r in later] == [(ids[0], 1, "refused")]
    assert len(store.list_notifications(pending=False)) == 3
    assert store.prune_notifications(before=151.0) == 1
    assert store.prune_notifications(before=151.0) == 0
    assert {r.alert.id for r in store.list_notifications(pending=False)} == {ids[0], ids[2]}
    store.close()


def test_the_outbox_is_the_fourth_migration(tmp_path: Path) -> None:
    assert "CREATE TABLE outbox" in MIGRATIONS[3]
    store = SqliteStore(tmp_path / "s.db")
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    assert version == len(MIGRATIONS)
    cols = [r[1] for r in db.execute("PRAGMA table_info(outbox)")]
    assert cols == [
        "id",
        "channel",
        "alert_id",
        "created",
        "attempts",
        "next_try",
        "last_error",
        "sent",
    ]
    db.close()
