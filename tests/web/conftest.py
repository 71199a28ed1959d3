"""A real ``stockade web`` process on loopback for the dashboard tests, and logged-in clients."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from stockade.model import Alert, BanRecord, Severity
from stockade.store import SqliteStore
from tests.conftest import Instance

USER, PASSWORD = "admin", "correct horse battery"


def write_config(instance: Instance, **sections: Any) -> None:
    """The instance's configuration with more sections than its files part (the responder
    is dry-run: the tests do not touch the host's firewall)."""
    data: dict[str, Any] = {
        "files": {**instance.files, "rules": instance.rules},
        "logs": {"responder": "dry-run"},
        "sockets": {"enabled": False},
        "scan": {"enabled": False},
        **sections,
    }
    instance.config.write_text(tomli_w.dumps(data))


def add_user(
    instance: Instance, user: str = USER, password: str = PASSWORD, role: str = ""
) -> None:
    """A dashboard user (the first one is an admin, the next ones viewers unless ``role``)."""
    r = instance.cli(
        "web", "passwd", user, *(("--role", role) if role else ()), input=password + "\n"
    )
    assert r.rc == 0, r.err


class WebServer:
    def __init__(self, instance: Instance, *extra: str) -> None:
        self.instance = instance
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stockade",
                *instance.args("web", "--listen", "127.0.0.1:0", *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        m = re.search(r"dashboard on (https?://\S+?)/? ", first)
        if m is None:
            self.proc.kill()
            raise AssertionError(f"no address in {first!r}; stderr: {self.proc.communicate()[1]}")
        self.url = m.group(1).rstrip("/")

    def store(self) -> SqliteStore:
        return SqliteStore(self.instance.state / "stockade.db")

    def add_alert(self, **kw: Any) -> int:
        fields: dict[str, Any] = {
            "part": "files",
            "kind": "changed",
            "subject": "/usr/bin/ls",
            "severity": Severity.HIGH,
            "detail": {"message": "content changed"},
            "host": "test",
        }
        fields.update(kw)
        s = self.store()
        try:
            return s.add_alerts([Alert(**fields)])[0]
        finally:
            s.close()

    def add_ban(self, address: str, **kw: Any) -> int:
        import time

        now = time.time()
        fields: dict[str, Any] = {
            "address": address,
            "jail": "sshd",
            "created": now,
            "until": now + 3600,
            "reason": "5 failures in 10m",
            "failures": 5,
            "matches": ("Failed password for root from " + address,),
        }
        fields.update(kw)
        s = self.store()
        try:
            return s.add_ban(BanRecord(**fields))
        finally:
            s.close()

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=60, **kw)

    def login(
        self, user: str = USER, password: str = PASSWORD, **kw: Any
    ) -> contextlib.closing[httpx.Client]:
        """A logged-in client (``with srv.login() as c``)."""
        c = self.client(**kw)
        r = login(c, user, password)
        assert r.status_code == 303, r.text
        return contextlib.closing(c)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def login_token(c: httpx.Client) -> str:
    page = c.get("/login")
    assert page.status_code == 200
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m is not None
    return m.group(1)


def login(c: httpx.Client, user: str, password: str) -> httpx.Response:
    token = login_token(c)
    return c.post("/login", data={"user": user, "password": password, "csrf": token, "next": "/"})


def csrf(c: httpx.Client) -> str:
    """The session's CSRF token, as the pages carry it."""
    page = c.get("/alerts")
    m = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert m is not None, page.text[:300]
    return m.group(1)


@pytest.fixture
def web(instance: Instance) -> Iterator[Any]:
    """``web(**config sections)``: a dashboard serving a fresh instance with one user."""
    servers: list[WebServer] = []

    def start(*extra: str, user: bool = True, **sections: Any) -> WebServer:
        write_config(instance, **sections)
        if user:
            add_user(instance)
        s = WebServer(instance, *extra)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def screenshots() -> Path:
    d = Path(__file__).resolve().parent.parent.parent / "artifacts" / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d
