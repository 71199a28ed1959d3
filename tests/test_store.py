"""The SQLite store: WAL, migrations, versions, filters, damaged files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from stockade.errors import StoreError
from stockade.model import Alert, Event, ScanRecord, Severity
from stockade.store import SqliteStore
from stockade.store.migrations import MIGRATIONS


def test_new_store_is_wal_and_migrated(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")
    s.close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_store_written_by_a_newer_stockade(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.db").close()
    sqlite3.connect(tmp_path / "s.db").execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer stockade"):
        SqliteStore(tmp_path / "s.db")


def test_damaged_store_file(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="move the damaged file away"):
        SqliteStore(tmp_path / "s.db")


def test_alerts_round_trip_and_filters(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")
    now = time.time()
    s.add_alerts(
        [
            Alert(part="files", kind="k1", subject="old", severity=Severity.LOW, time=now - 7200),
            Alert(
                part="files",
                kind="k2",
                subject="new",
                severity=Severity.CRITICAL,
                time=now,
                detail={"x": [1, 2]},
            ),
            Alert(part="logs", kind="k3", subject="other", severity=Severity.HIGH, time=now - 10),
        ]
    )
    assert [a.subject for a in s.list_alerts()] == ["old", "other", "new"]
    assert [a.subject for a in s.list_alerts(since=now - 3600)] == ["other", "new"]
    assert [a.subject for a in s.list_alerts(part="files")] == ["old", "new"]
    assert [a.subject for a in s.list_alerts(min_severity=Severity.HIGH)] == ["other", "new"]
    assert [a.subject for a in s.list_alerts(limit=2)] == ["other", "new"]
    new = s.list_alerts(part="files")[-1]
    assert new.detail == {"x": [1, 2]} and new.severity is Severity.CRITICAL
    assert s.acknowledge_alert(new.id or 0)
    assert s.list_alerts(part="files")[-1].acknowledged
    s.add_events([Event(part="files", kind="check", subject="s", detail={"n": 1})])
    assert s.list_events()[0].detail == {"n": 1}


def test_baseline_versions_are_kept_and_readable(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")

    def commit(version: int, changes: dict[bytes, str | None], replaced: list[bytes]) -> None:
        s.commit_baseline(
            "p",
            version,
            changes,
            replaced=replaced,
            note="n",
            meta="{}",
            entries=0,
            digest="d",
            signature=b"s",
            key_id="k",
        )

    commit(1, {b"/a": "1", b"/a/b": "2", b"/c": "3"}, [])
    commit(2, {b"/a/b": "2b", b"/c": None}, [b"/a/b", b"/c"])
    with pytest.raises(StoreError, match="at the same time"):
        commit(2, {b"/a": "lost"}, [b"/a"])  # a racing writer's version: refused, nothing written
    commit(3, {b"/d": "4"}, [])
    assert dict(s.baseline_entries("p")) == {b"/a": "1", b"/a/b": "2b", b"/d": "4"}
    assert dict(s.baseline_entries("p", 1)) == {b"/a": "1", b"/a/b": "2", b"/c": "3"}
    assert dict(s.baseline_entries("p", 2)) == {b"/a": "1", b"/a/b": "2b"}
    assert dict(s.baseline_entries("p", under=b"/a")) == {b"/a": "1", b"/a/b": "2b"}
    assert s.baseline_entry("p", b"/c", 1) == "3" and s.baseline_entry("p", b"/c") is None
    assert [k for k, _ in s.baseline_entries("p")] == sorted([b"/a", b"/a/b", b"/d"])
    assert s.prune_baseline("p", 2) == 1
    assert [v.version for v in s.baseline_versions("p")] == [2, 3]
    assert dict(s.baseline_entries("p", 2)) == {b"/a": "1", b"/a/b": "2b"}


def test_two_instances_side_by_side(tmp_path: Path) -> None:
    a = SqliteStore(tmp_path / "a" / "s.db")
    b = SqliteStore(tmp_path / "b" / "s.db")
    a.set_state("k", "a")
    b.set_state("k", "b")
    assert (a.get_state("k"), b.get_state("k")) == ("a", "b")


def test_concurrent_reader_while_writing(tmp_path: Path) -> None:
    w = SqliteStore(tmp_path / "s.db")
    r = SqliteStore(tmp_path / "s.db")
    w.add_alerts(
        [Alert(part="p", kind="k", subject=str(i), severity=Severity.LOW) for i in range(100)]
    )
    assert len(r.list_alerts()) == 100


def test_scans_are_stored_listed_and_pruned(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ids = [
        store.add_scan(ScanRecord(g, float(t), float(t) + 1, f'[{{"n": {t}}}]', hosts_up=t))
        for t, g in [(1, "lan"), (2, "dmz"), (3, "lan"), (4, "lan")]
    ]
    assert [s.started for s in store.list_scans(group="lan")] == [1.0, 3.0, 4.0]
    assert [s.started for s in store.list_scans(group="lan", limit=2)] == [3.0, 4.0]
    assert len(store.list_scans()) == 4
    got = store.get_scan(ids[1])
    assert got is not None and (got.group, got.hosts, got.hosts_up) == ("dmz", '[{"n": 2}]', 2)
    assert store.get_scan(999) is None
    assert store.prune_scans("lan", 1) == 2
    assert [s.started for s in store.list_scans()] == [2.0, 4.0]
    store.close()


def test_alerts_after_an_id(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "s.db")
    ids = s.add_alerts([Alert("files", "k", f"/x{i}", Severity.HIGH) for i in range(5)])
    assert [a.subject for a in s.list_alerts(after_id=ids[2])] == ["/x3", "/x4"]
    assert s.list_alerts(after_id=ids[4]) == []
    s.close()


def test_web_users_and_sessions(tmp_path: Path) -> None:
    from stockade.model import WebSession

    s = SqliteStore(tmp_path / "s.db")
    assert s.set_web_user("ann", "h1", when=1.0) is True
    assert s.web_user_hash("ann") == "h1" and s.web_user_hash("bob") is None
    now = time.time()
    s.add_web_session(WebSession("d1", "ann", "c1", now, now + 60))
    s.add_web_session(WebSession("d2", "ann", "c2", now - 120, now - 60))
    assert s.web_session("d1", now=now) is not None
    assert s.web_session("d2", now=now) is None  # expired
    assert s.delete_web_sessions() == 1  # only the expired one
    assert s.set_web_user("ann", "h2", when=2.0) is False  # changed: her sessions end
    assert s.web_session("d1", now=now) is None
    assert s.list_web_users() == ["ann"]
    s.add_alerts([Alert("files", "k", "a", Severity.LOW), Alert("files", "k", "b", Severity.LOW)])
    assert s.last_alert_id() == 2
    got = s.get_alert(2)
    assert got is not None and got.subject == "b" and s.get_alert(3) is None
    s.close()
