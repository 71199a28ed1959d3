"""Events and alerts: the two records that flow through stockade.

A sensor observes something and emits an :class:`Event`; a detector decides that an event (or
several) deserves attention and emits an :class:`Alert`. Both carry the same fields so that an
alert can always be traced to what was seen: when, on which host, by which part, what kind of
thing happened, to what subject, how severe, and a JSON-serialisable detail mapping.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """How urgent a record is; ordered so that ``max()`` gives the worst."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of {names}") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Event:
    """Something a sensor observed."""

    part: str
    kind: str
    subject: str
    severity: Severity = Severity.INFO
    detail: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A ban as the store keeps it: active until ``until`` (None: permanent) unless lifted."""

    address: str  # an address or a network (2001:db8:1:2::/64)
    jail: str
    created: float
    until: float | None
    reason: str = ""
    source: str = "auto"  # "auto" (a jail decided), "manual" (stockade bans ban), "restored"
    failures: int = 0
    matches: tuple[str, ...] = ()
    lifted: float | None = None
    lifted_by: str = ""
    id: int | None = None

    def active(self, now: float) -> bool:
        return self.lifted is None and (self.until is None or self.until > now)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a detector decided deserves attention."""

    part: str
    kind: str
    subject: str
    severity: Severity
    detail: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""
    time: float = field(default_factory=time.time)
    id: int | None = None
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One stored round of a scan group: its hosts as JSON (a list of host objects)."""

    group: str
    started: float
    finished: float
    hosts: str  # JSON: a list of host snapshots
    hosts_up: int = 0
    hosts_total: int = 0
    open_ports: int = 0
    meta: str = "{}"
    id: int | None = None


@dataclass(frozen=True, slots=True)
class WebSession:
    """A dashboard session as the store keeps it: the digest of its cookie token, never the
    token itself, and the CSRF token that state-changing requests of the session must carry."""

    digest: str
    user: str
    csrf: str
    created: float
    expires: float
    address: str = ""
    #: the role of its user, read from the user at each lookup (not kept in the session)
    role: str = "viewer"


#: dashboard roles: a viewer reads everything, an admin also acts (acknowledge, accept, ban)
VIEWER, ADMIN = "viewer", "admin"
ROLES = (VIEWER, ADMIN)


@dataclass(frozen=True, slots=True)
class WebUser:
    """A dashboard user as ``stockade web users`` lists it (the password hash stays inside)."""

    name: str
    role: str
    created: float
    changed: float
