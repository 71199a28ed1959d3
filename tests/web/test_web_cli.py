"""``stockade web`` and ``stockade web passwd`` as an administrator meets them, and the
dashboard served by ``stockade run`` when ``web.enabled``."""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

import httpx

from stockade.store import SqliteStore
from tests.conftest import Instance
from tests.web.conftest import PASSWORD, USER, add_user, login, write_config


def test_passwd_creates_and_changes_a_user(instance: Instance) -> None:
    write_config(instance)
    r = instance.cli("web", "passwd", "alice", input="first password\n")
    assert r.rc == 0 and "created dashboard user alice" in r.out
    s = SqliteStore(instance.state / "stockade.db")
    try:
        first = s.web_user_hash("alice")
    finally:
        s.close()
    r = instance.cli("web", "passwd", "alice", input="second password\n")
    assert r.rc == 0 and "changed the password" in r.out
    s = SqliteStore(instance.state / "stockade.db")
    try:
        assert s.web_user_hash("alice") not in (None, first)
        assert "second password" not in (s.web_user_hash("alice") or "")
    finally:
        s.close()


def test_bad_input_is_one_line_and_status_2(instance: Instance) -> None:
    write_config(instance)
    cases = [
        (("web", "passwd"), "", "USER must be"),
        (("web", "passwd", "bad name"), "password123\n", "USER must be"),
        (("web", "passwd", "bob"), "short\n", "at least 8 characters"),
        (("web",), "", "no dashboard user yet"),
        (("web", "--listen", "localhost:1"), "", "--listen: 'localhost:1'"),
        (("web", "serve", "extra"), "", "unexpected argument"),
    ]
    for args, stdin, message in cases:
        r = instance.cli(*args, input=stdin)
        assert r.rc == 2, (args, r.err)
        assert r.one_line_error and message in r.err, (args, r.err)


def test_a_taken_port_is_one_line(instance: Instance) -> None:
    write_config(instance)
    add_user(instance)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = instance.cli("web", "--listen", f"127.0.0.1:{port}")
    assert r.rc == 2 and r.one_line_error, r.err
    assert f"cannot listen on 127.0.0.1:{port}" in r.err


def test_tls_files_that_do_not_load_are_one_line(instance: Instance) -> None:
    (instance.base / "c.pem").write_text("not a certificate")
    write_config(instance, web={"tls_cert": str(instance.base / "c.pem"), "tls_key": "/nope"})
    add_user(instance)
    r = instance.cli("web", "--listen", "127.0.0.1:0")
    assert r.rc == 2 and r.one_line_error and "web.tls_cert/tls_key" in r.err, r.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_serves_the_dashboard_when_enabled(instance: Instance, daemon: Any) -> None:
    port = _free_port()
    write_config(instance, web={"enabled": True, "listen": f"127.0.0.1:{port}"})
    add_user(instance)
    d = daemon(instance)
    d.wait_for(rf"serving the dashboard on http://127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/login", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the dashboard did not answer"
            time.sleep(0.1)
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/api/overview").status_code == 401
        assert login(c, USER, PASSWORD).status_code == 303
        assert c.get("/api/overview").status_code == 200
        # an open live stream does not hold the daemon up at SIGTERM
        with c.stream("GET", "/api/alerts/stream") as r:
            assert next(r.iter_lines()) == "retry: 2000"
            d.signal(signal.SIGTERM)
            assert d.proc.wait(30) == 0
    try:
        httpx.get(url + "/login", timeout=5)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the dashboard still answers after the daemon stopped")
