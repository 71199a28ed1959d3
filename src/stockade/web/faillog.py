"""The failed-login log: one line per failed dashboard login, in a shape fail2ban's filters
(and so stockade's logs part) read, so the dashboard is protected by the jail that watches it.

    2026-11-26 18:30:00 stockade-web[1234]: authentication failure for user "admin" from 192.0.2.7

:data:`FAILREGEX` is the matching ``failregex`` for a jail (see the README).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

FAILREGEX = r'^ stockade-web\[\d+\]: authentication failure for user ".*" from <HOST>$'


def _clean(text: str) -> str:
    """A user name as given, made safe for one log line: no control characters, no quotes,
    bounded length (an attacker chooses it and must not forge a second line or host)."""
    out = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text[:64])
    return out + ("…" if len(text) > 64 else "")


def failure_line(user: str, address: str, when: float, pid: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    return (
        f'{stamp} stockade-web[{pid}]: authentication failure for user "{_clean(user)}" '
        f"from {address}\n"
    )


class FailureLog:
    """Appends failure lines to a file (created 0600), from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, user: str, address: str, when: float | None = None) -> None:
        line = failure_line(user, address, time.time() if when is None else when, os.getpid())
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8", "backslashreplace"))
            finally:
                os.close(fd)
