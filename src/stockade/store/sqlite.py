"""The single-host store: one SQLite file in WAL mode.

Each instance owns one connection; threads and processes open their own. Writes run in
``BEGIN IMMEDIATE`` transactions so a crash leaves either the old or the new state.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from stockade.errors import StockadeError, StoreError
from stockade.model import (
    ADMIN,
    ROLES,
    VIEWER,
    Alert,
    BanRecord,
    Event,
    ScanRecord,
    Severity,
    WebSession,
    WebUser,
)
from stockade.store.base import BaselineVersion, OutboxItem
from stockade.store.migrations import MIGRATIONS


def _upper(prefix: bytes) -> tuple[bytes, bytes]:
    """Key range holding ``prefix`` itself and every path below it."""
    base = prefix.rstrip(b"/")
    return base + b"/", base + b"0"  # "0" follows "/" in byte order


class SqliteStore:
    """Store implementation on a SQLite file."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(readonly)
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"{path}: cannot open the store: {e}; move the damaged file away to start afresh"
            ) from None
        except OSError as e:
            raise StoreError(f"{path}: cannot open the store: {e.strerror}") from None

    def _migrate(self, readonly: bool) -> None:
        (have,) = self._db.execute("PRAGMA user_version").fetchone()
        if have > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: written by a newer stockade (schema {have}, this one knows "
                f"{len(MIGRATIONS)}); upgrade stockade"
            )
        if have == len(MIGRATIONS) or readonly:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (have,) = self._db.execute("PRAGMA user_version").fetchone()
            for step in MIGRATIONS[have:]:
                for statement in step.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    # -- events and alerts ---------------------------------------------------------------

    def add_events(self, events: Sequence[Event]) -> list[int]:
        return self._insert_records("events", events, with_ack=False)

    def add_alerts(self, alerts: Sequence[Alert]) -> list[int]:
        return self._insert_records("alerts", alerts, with_ack=True)

    def _insert_records(
        self, table: str, records: Sequence[Event | Alert], with_ack: bool
    ) -> list[int]:
        ids = []
        cols = "time, host, part, kind, subject, severity, detail"
        marks = "?, ?, ?, ?, ?, ?, ?"
        if with_ack:
            cols += ", acknowledged"
            marks += ", ?"
        with self._write():
            for r in records:
                row: list[Any] = [r.time, r.host, r.part, r.kind, r.subject, int(r.severity)]
                row.append(json.dumps(r.detail, sort_keys=True))
                if with_ack:
                    row.append(int(getattr(r, "acknowledged", False)))
                cur = self._db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", row)
                ids.append(int(cur.lastrowid or 0))
        return ids

    def list_alerts(
        self,
        *,
        since: float | None = None,
        part: str | None = None,
        min_severity: Severity | None = None,
        limit: int | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
    ) -> list[Alert]:
        where, args = self._filters(since, part)
        if min_severity is not None:
            where.append("severity >= ?")
            args.append(int(min_severity))
        if after_id is not None:
            where.append("id > ?")
            args.append(after_id)
        if before_id is not None:
            where.append("(time, id) < (SELECT time, id FROM alerts WHERE id = ?)")
            args.append(before_id)
        rows = self._select("alerts", where, args, limit, extra=", acknowledged")
        return [Alert(**_record(r), id=r[0], acknowledged=bool(r[8])) for r in rows]

    def list_events(
        self, *, since: float | None = None, part: str | None = None, limit: int | None = None
    ) -> list[Event]:
        where, args = self._filters(since, part)
        rows = self._select("events", where, args, limit)
        return [Event(**_record(r)) for r in rows]

    @staticmethod
    def _filters(since: float | None, part: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if part is not None:
            where.append("part = ?")
            args.append(part)
        return where, args

    def _select(
        self, table: str, where: list[str], args: list[Any], limit: int | None, extra: str = ""
    ) -> list[tuple[Any, ...]]:
        sql = f"SELECT id, time, host, part, kind, subject, severity, detail{extra} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is None:
            return list(self._db.execute(sql + " ORDER BY time, id", args))
        newest = list(
            self._db.execute(sql + " ORDER BY time DESC, id DESC LIMIT ?", [*args, limit])
        )
        return newest[::-1]

    def get_alert(self, alert_id: int) -> Alert | None:
        rows = self._select("alerts", ["id = ?"], [alert_id], None, extra=", acknowledged")
        return (
            Alert(**_record(rows[0]), id=rows[0][0], acknowledged=bool(rows[0][8]))
            if rows
            else None
        )

    def last_alert_id(self) -> int:
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()
        return int(last)

    def acknowledge_alert(self, alert_id: int) -> bool:
        with self._write():
            cur = self._db.execute("UPDATE alerts SET acknowledged = 1 WHERE id = ?", (alert_id,))
        return cur.rowcount > 0

    # -- baselines -----------------------------------------------------------------------

    _VERSION_COLS = "part, version, created, note, meta, entries, digest, signature, key_id"

    def baseline_versions(self, part: str) -> list[BaselineVersion]:
        rows = self._db.execute(
            f"SELECT {self._VERSION_COLS} FROM baseline_versions WHERE part = ? ORDER BY version",
            (part,),
        )
        return [BaselineVersion(*r) for r in rows]

    def baseline_version(self, part: str, version: int | None = None) -> BaselineVersion | None:
        if version is None:
            sql = f"SELECT {self._VERSION_COLS} FROM baseline_versions WHERE part = ? ORDER BY version DESC LIMIT 1"  # noqa: E501
            row = self._db.execute(sql, (part,)).fetchone()
        else:
            sql = (
                f"SELECT {self._VERSION_COLS} FROM baseline_versions WHERE part = ? AND version = ?"
            )
            row = self._db.execute(sql, (part, version)).fetchone()
        return BaselineVersion(*row) if row else None

    def _version_clause(self, part: str, version: int | None) -> tuple[str, list[Any]]:
        if version is None:
            return "part = ? AND vto IS NULL", [part]
        return "part = ? AND vfrom <= ? AND (vto IS NULL OR vto >= ?)", [part, version, version]

    def baseline_entries(
        self, part: str, version: int | None = None, under: bytes | None = None
    ) -> Iterator[tuple[bytes, str]]:
        where, args = self._version_clause(part, version)
        if under is not None and under.rstrip(b"/"):
            lo, hi = _upper(under)
            where += " AND (key = ? OR (key >= ? AND key < ?))"
            args += [under.rstrip(b"/"), lo, hi]
        cur = self._db.execute(
            f"SELECT key, data FROM baseline_entries WHERE {where} ORDER BY key",
            args,
        )
        for key, data in cur:
            yield _as_bytes(key), _as_text(data)

    def baseline_entry(self, part: str, key: bytes, version: int | None = None) -> str | None:
        where, args = self._version_clause(part, version)
        row = self._db.execute(
            f"SELECT data FROM baseline_entries WHERE {where} AND key = ?",
            [*args, key],
        ).fetchone()
        return None if row is None else _as_text(row[0])

    def commit_baseline(
        self,
        part: str,
        version: int,
        changes: Mapping[bytes, str | None],
        *,
        replaced: Iterable[bytes],
        note: str,
        meta: str,
        entries: int,
        digest: str,
        signature: bytes,
        key_id: str,
    ) -> None:
        with self._write():
            (cur,) = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM baseline_versions WHERE part = ?", (part,)
            ).fetchone()
            if version != cur + 1:
                raise StoreError(
                    f"{self.path}: baseline version {cur} is current, so {version} cannot follow "
                    "it: another stockade changed the baseline at the same time; try again"
                )
            new = version
            self._db.executemany(
                "UPDATE baseline_entries SET vto = ? WHERE part = ? AND key = ? AND vto IS NULL",
                ((cur, part, k) for k in replaced),
            )
            self._db.executemany(
                "INSERT INTO baseline_entries (part, key, data, vfrom) VALUES (?, ?, ?, ?)",
                ((part, k, d, new) for k, d in changes.items() if d is not None),
            )
            self._db.execute(
                f"INSERT INTO baseline_versions ({self._VERSION_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (part, new, time.time(), note, meta, entries, digest, signature, key_id),
            )

    def prune_baseline(self, part: str, keep: int) -> int:
        """Forget versions older than the newest ``keep``; return how many were dropped."""
        versions = [v.version for v in self.baseline_versions(part)]
        if len(versions) <= keep:
            return 0
        oldest_kept = versions[-keep]
        with self._write():
            self._db.execute(
                "DELETE FROM baseline_entries WHERE part = ? AND vto IS NOT NULL AND vto < ?",
                (part, oldest_kept),
            )
            self._db.execute(
                "DELETE FROM baseline_versions WHERE part = ? AND version < ?", (part, oldest_kept)
            )
        return len(versions) - keep

    # -- bans ----------------------------------------------------------------------------

    _BAN_COLS = (
        "address, jail, created, until, reason, source, failures, matches, lifted, lifted_by"
    )

    def add_ban(self, ban: BanRecord) -> int:
        with self._write():
            cur = self._db.execute(
                f"INSERT INTO bans ({self._BAN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    ban.address,
                    ban.jail,
                    ban.created,
                    ban.until,
                    ban.reason,
                    ban.source,
                    ban.failures,
                    json.dumps(list(ban.matches)),
                    ban.lifted,
                    ban.lifted_by,
                ),
            )
        return int(cur.lastrowid or 0)

    def list_bans(
        self,
        *,
        active_at: float | None = None,
        address: str | None = None,
        limit: int | None = None,
    ) -> list[BanRecord]:
        where: list[str] = []
        args: list[Any] = []
        if active_at is not None:
            where.append("lifted IS NULL AND (until IS NULL OR until > ?)")
            args.append(active_at)
        if address is not None:
            where.append("address = ?")
            args.append(address)
        sql = f"SELECT id, {self._BAN_COLS} FROM bans"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = list(self._db.execute(sql, args))[::-1]
        return [
            BanRecord(
                id=r[0],
                address=r[1],
                jail=r[2],
                created=r[3],
                until=r[4],
                reason=r[5],
                source=r[6],
                failures=r[7],
                matches=tuple(json.loads(r[8])),
                lifted=r[9],
                lifted_by=r[10],
            )
            for r in rows
        ]

    def lift_bans(self, address: str, *, jail: str | None, when: float, by: str) -> int:
        sql = "UPDATE bans SET lifted = ?, lifted_by = ? WHERE address = ? AND lifted IS NULL"
        args: list[Any] = [when, by, address]
        if jail is not None:
            sql += " AND jail = ?"
            args.append(jail)
        with self._write():
            cur = self._db.execute(sql, args)
        return cur.rowcount

    def count_bans(self, address: str, *, jail: str | None = None) -> int:
        sql = "SELECT count(*) FROM bans WHERE address = ? AND source != 'restored'"
        args: list[Any] = [address]
        if jail is not None:
            sql += " AND jail = ?"
            args.append(jail)
        (n,) = self._db.execute(sql, args).fetchone()
        return int(n)

    # -- scans ---------------------------------------------------------------------------

    _SCAN_COLS = "grp, started, finished, hosts_up, hosts_total, open_ports, meta, hosts"

    def add_scan(self, scan: ScanRecord) -> int:
        with self._write():
            cur = self._db.execute(
                f"INSERT INTO scans ({self._SCAN_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    scan.group,
                    scan.started,
                    scan.finished,
                    scan.hosts_up,
                    scan.hosts_total,
                    scan.open_ports,
                    scan.meta,
                    scan.hosts,
                ),
            )
        return int(cur.lastrowid or 0)

    def list_scans(self, *, group: str | None = None, limit: int | None = None) -> list[ScanRecord]:
        sql = f"SELECT id, {self._SCAN_COLS} FROM scans"
        args: list[Any] = []
        if group is not None:
            sql += " WHERE grp = ?"
            args.append(group)
        sql += " ORDER BY started DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_scan(r) for r in self._db.execute(sql, args)][::-1]

    def get_scan(self, scan_id: int) -> ScanRecord | None:
        sql = f"SELECT id, {self._SCAN_COLS} FROM scans WHERE id = ?"
        row = self._db.execute(sql, (scan_id,)).fetchone()
        return None if row is None else _scan(row)

    def prune_scans(self, group: str, keep: int) -> int:
        keep_ids = [s.id for s in self.list_scans(group=group, limit=max(keep, 0))]
        marks = ",".join("?" * len(keep_ids)) or "NULL"
        with self._write():
            cur = self._db.execute(
                f"DELETE FROM scans WHERE grp = ? AND id NOT IN ({marks})", [group, *keep_ids]
            )
        return cur.rowcount

    # -- small state ---------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        self.set_states({key: value})

    def set_states(self, items: Mapping[str, str]) -> None:
        if not items:
            return
        with self._write():
            self._db.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(items.items()),
            )

    # -- notification outbox --------------------------------------------------------------

    def route_alerts(
        self, routes: Sequence[tuple[str, int]], *, now: float, state: Mapping[str, str]
    ) -> None:
        with self._write():
            self._db.executemany(
                "INSERT INTO outbox (channel, alert_id, created, next_try) VALUES (?, ?, ?, ?)",
                [(channel, alert_id, now, now) for channel, alert_id in routes],
            )
            self._db.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(state.items()),
            )

    _OUTBOX_SELECT = (
        "SELECT o.id, o.channel, o.created, o.attempts, o.next_try, o.last_error, o.sent, "
        "a.id, a.time, a.host, a.part, a.kind, a.subject, a.severity, a.detail, a.acknowledged "
        "FROM outbox o JOIN alerts a ON a.id = o.alert_id"
    )

    def due_notifications(self, channel: str, *, now: float, limit: int) -> list[OutboxItem]:
        rows = self._db.execute(
            self._OUTBOX_SELECT + " WHERE o.channel = ? AND o.sent IS NULL AND o.next_try <= ?"
            " ORDER BY o.id LIMIT ?",
            (channel, now, limit),
        )
        return [_outbox(r) for r in rows]

    def list_notifications(
        self, *, pending: bool = True, limit: int | None = None
    ) -> list[OutboxItem]:
        sql = self._OUTBOX_SELECT + (" WHERE o.sent IS NULL" if pending else "")
        if limit is None:
            rows = list(self._db.execute(sql + " ORDER BY o.id"))
        else:
            rows = list(self._db.execute(sql + " ORDER BY o.id DESC LIMIT ?", (limit,)))[::-1]
        return [_outbox(r) for r in rows]

    def mark_sent(self, ids: Sequence[int], *, when: float) -> None:
        with self._write():
            self._db.executemany(
                "UPDATE outbox SET sent = ?, attempts = attempts + 1 WHERE id = ?",
                [(when, i) for i in ids],
            )

    def mark_failed(self, ids: Sequence[int], *, error: str, next_try: float) -> None:
        with self._write():
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_try = ? "
                "WHERE id = ?",
                [(error, next_try, i) for i in ids],
            )

    def prune_notifications(self, before: float) -> int:
        with self._write():
            cur = self._db.execute(
                "DELETE FROM outbox WHERE sent IS NOT NULL AND sent < ?", (before,)
            )
        return cur.rowcount

    # -- dashboard users and sessions -----------------------------------------------------

    def set_web_user(
        self, name: str, password_hash: str, *, when: float, role: str | None = None
    ) -> bool:
        with self._write():
            cur = self._db.execute(
                "UPDATE web_users SET hash = ?, changed = ? WHERE name = ?",
                (password_hash, when, name),
            )
            if cur.rowcount:
                if role is not None:
                    self._change_role(name, role)
                # a new password ends the sessions opened with the old one
                self._db.execute("DELETE FROM web_sessions WHERE user = ?", (name,))
                return False
            if role is None:
                (users,) = self._db.execute("SELECT count(*) FROM web_users").fetchone()
                role = ADMIN if users == 0 else VIEWER
            self._db.execute(
                "INSERT INTO web_users (name, hash, created, changed, role) VALUES (?, ?, ?, ?, ?)",
                (name, password_hash, when, when, _role(role)),
            )
        return True

    def set_web_user_role(self, name: str, role: str) -> bool:
        with self._write():
            if not self._change_role(name, role):
                return False
            self._db.execute("DELETE FROM web_sessions WHERE user = ?", (name,))
        return True

    def _change_role(self, name: str, role: str) -> bool:
        if _role(role) != ADMIN:
            self._keep_an_admin(name, f"demote {name!r} to {role}")
        cur = self._db.execute("UPDATE web_users SET role = ? WHERE name = ?", (role, name))
        return bool(cur.rowcount)

    def _keep_an_admin(self, name: str, doing: str) -> None:
        """Refuse (inside the write transaction) to leave the dashboard without an admin."""
        (others,) = self._db.execute(
            "SELECT count(*) FROM web_users WHERE role = ? AND name != ?", (ADMIN, name)
        ).fetchone()
        row = self._db.execute("SELECT role FROM web_users WHERE name = ?", (name,)).fetchone()
        if others == 0 and row is not None and row[0] == ADMIN:
            raise StockadeError(
                f"cannot {doing}: it is the last dashboard admin; make another user admin "
                "first (`stockade web role USER admin`); nothing changed"
            )

    def web_user_hash(self, name: str) -> str | None:
        row = self._db.execute("SELECT hash FROM web_users WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def list_web_users(self) -> list[str]:
        return [u.name for u in self.web_users()]

    def web_users(self) -> list[WebUser]:
        rows = self._db.execute(
            "SELECT name, role, created, changed FROM web_users ORDER BY name"
        ).fetchall()
        return [WebUser(*r) for r in rows]

    def web_user(self, name: str) -> WebUser | None:
        row = self._db.execute(
            "SELECT name, role, created, changed FROM web_users WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else WebUser(*row)

    def delete_web_user(self, name: str) -> bool:
        with self._write():
            self._keep_an_admin(name, f"remove {name!r}")
            self._db.execute("DELETE FROM web_sessions WHERE user = ?", (name,))
            cur = self._db.execute("DELETE FROM web_users WHERE name = ?", (name,))
            return bool(cur.rowcount)

    def add_web_session(self, session: WebSession) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO web_sessions (digest, user, csrf, created, expires, address) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.digest,
                    session.user,
                    session.csrf,
                    session.created,
                    session.expires,
                    session.address,
                ),
            )

    def web_session(self, digest: str, *, now: float) -> WebSession | None:
        row = self._db.execute(
            "SELECT s.digest, s.user, s.csrf, s.created, s.expires, s.address, u.role "
            "FROM web_sessions s JOIN web_users u ON u.name = s.user "
            "WHERE s.digest = ? AND s.expires > ?",
            (digest, now),
        ).fetchone()
        return None if row is None else WebSession(*row)

    def delete_web_sessions(self, *, digest: str | None = None, user: str | None = None) -> int:
        with self._write():
            cur = self._db.execute(
                "DELETE FROM web_sessions WHERE digest = ? OR user = ? OR expires <= ?",
                (digest, user, time.time()),
            )
        return cur.rowcount

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self.path)


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown dashboard role {role!r} (one of {', '.join(ROLES)})")
    return role


def _scan(r: tuple[Any, ...]) -> ScanRecord:
    return ScanRecord(
        id=r[0],
        group=r[1],
        started=r[2],
        finished=r[3],
        hosts_up=r[4],
        hosts_total=r[5],
        open_ports=r[6],
        meta=r[7],
        hosts=r[8],
    )


def _outbox(r: tuple[Any, ...]) -> OutboxItem:
    alert = Alert(**_record(r[7:15]), id=r[7], acknowledged=bool(r[15]))
    return OutboxItem(
        id=r[0],
        channel=r[1],
        alert=alert,
        created=r[2],
        attempts=r[3],
        next_try=r[4],
        last_error=r[5],
        sent=r[6],
    )


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    """The fields events and alerts share, from a row selected by ``_select``."""
    return {
        "time": row[1],
        "host": row[2],
        "part": row[3],
        "kind": row[4],
        "subject": row[5],
        "severity": Severity(row[6]),
        "detail": json.loads(row[7]),
    }


def _as_bytes(value: object) -> bytes:
    """A key as stored; a row written outside stockade may hold another type."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreError(f"{self._path}: cannot write to the store: {e}") from None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
