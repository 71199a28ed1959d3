"""A real ``stockade run`` process, with its log lines collected as they come."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from stockade.store import SqliteStore
from tests.conftest import Instance

if TYPE_CHECKING:
    from tests.netns import Namespace


class Daemon:
    def __init__(self, instance: Instance, *extra: str, namespace: Namespace | None = None) -> None:
        """Start ``stockade run`` for ``instance`` (inside ``namespace`` when given)."""
        self.instance = instance
        argv = [sys.executable, "-m", "stockade", *instance.args("run", *extra)]
        kw: dict[str, Any] = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.PIPE,
            "env": {**os.environ, "PYTHONUNBUFFERED": "1"},
        }
        if namespace is not None:
            self.attach(namespace.popen(*argv, **kw))
        else:
            self.attach(subprocess.Popen(argv, text=True, **kw))

    def attach(self, proc: subprocess.Popen[str]) -> None:
        """Follow the log of a started ``stockade run``."""
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60, after: int = 0) -> str:
        """The first log line from index ``after`` on that matches ``pattern``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no log line matching {pattern!r}; log so far:\n" + "\n".join(self.lines)
                    )
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"stockade run did not stop within {timeout:.0f} s of SIGTERM; its log:\n"
                + "\n".join(self.lines)
            ) from None

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts in the daemon's store (read directly: the configuration may be broken)."""
        db = self.instance.state / "stockade.db"
        if not db.exists():
            return []
        store = SqliteStore(db)
        try:
            return [
                {
                    "part": a.part,
                    "kind": a.kind,
                    "subject": a.subject,
                    "severity": str(a.severity),
                    "detail": a.detail,
                }
                for a in store.list_alerts()
            ]
        finally:
            store.close()

    def wait_alert(self, predicate: Any, timeout: float = 30) -> tuple[dict[str, Any], float]:
        """Poll the store until an alert satisfies ``predicate``; return it and how long it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            for a in self.alerts():
                if predicate(a):
                    return a, time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(
            f"no such alert; alerts: {self.alerts()}\nlog:\n" + "\n".join(self.lines)
        )


@pytest.fixture
def daemon() -> Iterator[Any]:
    started: list[Daemon] = []

    def start(instance: Instance, *extra: str) -> Daemon:
        d = Daemon(instance, *extra)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
