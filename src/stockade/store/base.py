"""The store interface every backend implements (SQLite now, PostgreSQL for fleets later).

Sensors, detectors and parts only see this protocol. Baselines are versioned: each accepted
change creates a new version, and every version can be listed, read, diffed and restored.
Baseline entries are opaque to the store: a key (bytes; file paths are not always UTF-8) and a
text value (the part's canonical JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from stockade.model import Alert, BanRecord, Event, ScanRecord, Severity, WebSession, WebUser


@dataclass(frozen=True, slots=True)
class BaselineVersion:
    """One version of a part's baseline, with its signature."""

    part: str
    version: int
    created: float
    note: str
    meta: str
    entries: int
    digest: str
    signature: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An alert routed to a notification channel: pending until ``sent`` is set."""

    id: int
    channel: str
    alert: Alert
    created: float
    attempts: int
    next_try: float
    last_error: str
    sent: float | None


class Store(Protocol):
    """What stockade keeps between runs."""

    def close(self) -> None: ...

    # events and alerts
    def add_events(self, events: Sequence[Event]) -> list[int]: ...
    def add_alerts(self, alerts: Sequence[Alert]) -> list[int]: ...
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
        """Alerts oldest first (the newest ``limit`` when given); ``after_id``: only those
        stored after the alert of that id (a cursor for followers: notifications, live pages);
        ``before_id``: only those older (by time, then id) than the alert of that id (a cursor
        for paging back)."""
        ...

    def list_events(
        self, *, since: float | None = None, part: str | None = None, limit: int | None = None
    ) -> list[Event]: ...
    def get_alert(self, alert_id: int) -> Alert | None: ...
    def last_alert_id(self) -> int:
        """The id of the alert stored last (0: none yet): where a follower starts."""
        ...

    def acknowledge_alert(self, alert_id: int) -> bool: ...

    # baselines
    def baseline_versions(self, part: str) -> list[BaselineVersion]: ...
    def baseline_version(self, part: str, version: int | None = None) -> BaselineVersion | None: ...
    def baseline_entries(
        self, part: str, version: int | None = None, under: bytes | None = None
    ) -> Iterator[tuple[bytes, str]]: ...
    def baseline_entry(self, part: str, key: bytes, version: int | None = None) -> str | None: ...
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
        """Create ``version``, which must follow the current one (else StoreError, nothing
        written): ``changes`` maps a key to its new text (None: removed); ``replaced`` lists the
        keys among them that the current version holds."""
        ...

    def prune_baseline(self, part: str, keep: int) -> int: ...

    # bans
    def add_ban(self, ban: BanRecord) -> int: ...
    def list_bans(
        self,
        *,
        active_at: float | None = None,
        address: str | None = None,
        limit: int | None = None,
    ) -> list[BanRecord]:
        """Bans, oldest first: those active at ``active_at`` if given, else every one."""
        ...

    def lift_bans(self, address: str, *, jail: str | None, when: float, by: str) -> int:
        """Mark the open bans of ``address`` (in ``jail``, or all) lifted; return how many."""
        ...

    def count_bans(self, address: str, *, jail: str | None = None) -> int:
        """How many times ``address`` was banned (in ``jail``, or in any jail)."""
        ...

    # network scans
    def add_scan(self, scan: ScanRecord) -> int: ...
    def list_scans(self, *, group: str | None = None, limit: int | None = None) -> list[ScanRecord]:
        """Stored scans, oldest first (the newest ``limit`` when given)."""
        ...

    def get_scan(self, scan_id: int) -> ScanRecord | None: ...
    def prune_scans(self, group: str, keep: int) -> int:
        """Delete all but the newest ``keep`` scans of ``group``; return how many went."""
        ...

    # small state: log positions, cursors, last-check times
    def get_state(self, key: str) -> str | None: ...
    def set_state(self, key: str, value: str) -> None: ...
    def set_states(self, items: Mapping[str, str]) -> None:
        """Several values in one transaction: all of them are stored, or none."""
        ...

    # notification outbox
    def route_alerts(
        self, routes: Sequence[tuple[str, int]], *, now: float, state: Mapping[str, str]
    ) -> None:
        """Add an outbox row for each (channel, alert id) and set ``state`` (the follower's
        cursor) in the same transaction: both happen, or neither."""
        ...

    def due_notifications(self, channel: str, *, now: float, limit: int) -> list[OutboxItem]:
        """Undelivered rows of ``channel`` whose next try is due, oldest first."""
        ...

    def list_notifications(
        self, *, pending: bool = True, limit: int | None = None
    ) -> list[OutboxItem]:
        """Outbox rows oldest first: the undelivered ones (``pending``) or every one."""
        ...

    def mark_sent(self, ids: Sequence[int], *, when: float) -> None: ...
    def mark_failed(self, ids: Sequence[int], *, error: str, next_try: float) -> None:
        """Count one more failed attempt and schedule the next one."""
        ...

    def prune_notifications(self, before: float) -> int:
        """Delete delivered rows sent before ``before``; return how many went."""
        ...

    # dashboard users and sessions
    def set_web_user(
        self, name: str, password_hash: str, *, when: float, role: str | None = None
    ) -> bool:
        """Create the user or change its password hash (and its role, when given); True when
        it was created. A new user without a role is an admin when it is the first user, a
        viewer otherwise. Raises StockadeError rather than demote the last admin."""
        ...

    def set_web_user_role(self, name: str, role: str) -> bool:
        """Change a user's role and end its sessions; False if there is no such user. Raises
        StockadeError rather than demote the last admin."""
        ...

    def web_user_hash(self, name: str) -> str | None: ...
    def list_web_users(self) -> list[str]: ...
    def web_users(self) -> list[WebUser]: ...
    def web_user(self, name: str) -> WebUser | None: ...
    def delete_web_user(self, name: str) -> bool:
        """Remove a dashboard user and end its sessions; False if there was no such user.
        Raises StockadeError rather than remove the last admin."""
        ...

    def add_web_session(self, session: WebSession) -> None: ...
    def web_session(self, digest: str, *, now: float) -> WebSession | None:
        """The session of that token digest if it has not expired and its user exists, with
        the user's current role."""
        ...

    def delete_web_sessions(self, *, digest: str | None = None, user: str | None = None) -> int:
        """End one session (``digest``) or every session of ``user``; expired ones go too."""
        ...
