"""``stockade web`` and ``stockade web passwd`` as an administrator meets them, and the
dashboard served by ``stockade run`` when ``web.enabled``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
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


def test_users_and_deluser(instance: Instance) -> None:
    write_config(instance)
    r = instance.cli("web", "users")
    assert r.rc == 0 and r.out == "" and "no dashboard user" in r.err
    for name in ("bob", "alice"):
        assert instance.cli("web", "passwd", name, input="a good password\n").rc == 0
    # the first user is an admin, the next ones viewers
    assert instance.cli("web", "users").out.splitlines() == ["alice  viewer", "bob    admin"]
    r = instance.cli("web", "deluser", "alice")
    assert r.rc == 0 and "removed dashboard user alice" in r.out and "1 user(s) left" in r.out
    assert instance.cli("web", "users").out.split() == ["bob", "admin"]


def test_bad_input_is_one_line_and_status_2(instance: Instance) -> None:
    write_config(instance)
    cases = [
        (("web", "passwd"), "", "USER must be"),
        (("web", "passwd", "bad name"), "password123\n", "USER must be"),
        (("web", "passwd", "bob"), "short\n", "at least 8 characters"),
        (("web",), "", "no dashboard user yet"),
        (("web", "--listen", "localhost:1"), "", "--listen: 'localhost:1'"),
        (("web", "serve", "extra"), "", "unexpected argument"),
        (("web", "users", "extra"), "", "unexpected argument"),
        (("web", "deluser"), "", "which user?"),
        (("web", "deluser", "nobody"), "", "no dashboard user 'nobody'"),
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


_GUESS = r"""
import re, sys, httpx
url = sys.argv[1]
with httpx.Client(base_url=url, timeout=20) as c:
    for _ in range(int(sys.argv[2])):
        page = c.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = c.post("/login", data={"user": "root", "password": "toor", "csrf": token})
        print(r.status_code, flush=True)
"""


def test_a_jail_on_the_failed_login_log_bans_a_brute_forcer(instance: Instance, netns: Any) -> None:
    """The dashboard protects itself: ``stockade run`` serves it in one namespace, with a jail
    (the README's failregex) over its failed-login log and the nftables responder; an attacker
    in another namespace guesses passwords, is banned, and can no longer connect."""
    from tests.conftest import need_root, need_tool
    from tests.daemonproc import Daemon

    need_root()
    need_tool("nft")
    from stockade.web.faillog import FAILREGEX

    server, attacker = netns.create("web"), netns.create("attacker")
    link = netns.link(server, attacker, ["10.47.0.1/24"], ["10.47.0.2/24"])
    host, bad = link.address("left"), link.address("right")
    authlog = instance.state / "web-auth.log"
    jail = {"name": "stockade-web", "failregex": [FAILREGEX], "logpath": [str(authlog)]}
    write_config(
        instance,
        web={"enabled": True, "listen": f"{host}:8470"},
        logs={
            "responder": "nftables",
            "nft_command": server.nft,
            "jails": [{**jail, "maxretry": 3}],
        },
    )
    add_user(instance)
    authlog.parent.mkdir(parents=True, exist_ok=True)
    authlog.touch(mode=0o600)
    d = Daemon.__new__(Daemon)
    d.instance = instance
    d.attach(
        server.popen(
            sys.executable,
            "-m",
            "stockade",
            *instance.args("run"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    )
    d.wait_for(r"serving the dashboard")
    deadline = time.monotonic() + 30
    while not attacker.can_connect(host, 8470):
        assert time.monotonic() < deadline, "the dashboard does not answer across the link"
        time.sleep(0.2)
    r = attacker.run(sys.executable, "-c", _GUESS, f"http://{host}:8470", "3", check=False)
    assert r.stdout.split() == ["401"] * 3, r.stderr
    line = d.wait_for(rf"jail stockade-web: banned {re.escape(bad)}", timeout=60)
    assert "3 failures" in line
    assert not attacker.can_connect(host, 8470)  # dropped by the ban
    s = SqliteStore(instance.state / "stockade.db")
    try:
        assert [b.address for b in s.list_bans(active_at=time.time())] == [bad]
    finally:
        s.close()
    assert d.stop() == 0


def test_roles_first_user_admin_then_viewers_and_role_changes(instance: Instance) -> None:
    write_config(instance)
    r = instance.cli("web", "passwd", "root", input="a good password\n")
    assert r.rc == 0 and "created dashboard user root (admin)" in r.out
    r = instance.cli("web", "passwd", "noc", input="a good password\n")
    assert r.rc == 0 and "created dashboard user noc (viewer)" in r.out
    r = instance.cli("web", "passwd", "ops", "--role", "admin", input="a good password\n")
    assert r.rc == 0 and "(admin)" in r.out
    r = instance.cli("web", "role", "noc", "admin")
    assert r.rc == 0 and "noc: viewer -> admin; its sessions have ended" in r.out
    r = instance.cli("web", "role", "ops", "viewer")
    assert r.rc == 0 and "ops: admin -> viewer" in r.out
    # a password change keeps the role unless --role says otherwise
    r = instance.cli("web", "passwd", "ops", input="another password\n")
    assert r.rc == 0 and "changed the password of dashboard user ops (viewer)" in r.out
    r = instance.cli("web", "passwd", "ops", "--role", "admin", input="another password\n")
    assert r.rc == 0 and "(admin)" in r.out
    lines = instance.cli("web", "users").out.splitlines()
    assert lines == ["noc   admin", "ops   admin", "root  admin"]


def test_the_last_admin_stays(instance: Instance) -> None:
    write_config(instance)
    add_user(instance, "root")
    add_user(instance, "noc")  # a viewer
    refused = [
        ("web", "role", "root", "viewer"),
        ("web", "deluser", "root"),
        ("web", "passwd", "root", "--role", "viewer"),
    ]
    for args in refused:
        r = instance.cli(*args, input="a good password\n")
        assert r.rc == 2 and r.one_line_error, (args, r.err)
        assert "it is the last dashboard admin" in r.err and "nothing changed" in r.err, r.err
    assert instance.cli("web", "users").out.split() == ["noc", "viewer", "root", "admin"]
    # with a second admin, the first may go
    assert instance.cli("web", "role", "noc", "admin").rc == 0
    assert instance.cli("web", "role", "root", "viewer").rc == 0
    assert instance.cli("web", "deluser", "root").rc == 0
    r = instance.cli("web", "deluser", "noc")
    assert r.rc == 2 and "last dashboard admin" in r.err
    # a viewer may always go
    add_user(instance, "temp")
    assert instance.cli("web", "deluser", "temp").rc == 0


def test_bad_role_input_is_one_line_and_status_2(instance: Instance) -> None:
    write_config(instance)
    add_user(instance, "root")
    cases = [
        (("web", "role"), "which user and which role"),
        (("web", "role", "root"), "which user and which role"),
        (("web", "role", "root", "boss"), "unknown role 'boss'; use viewer or admin"),
        (("web", "role", "nobody", "admin"), "no dashboard user 'nobody'"),
        (("web", "passwd", "x1", "--role", "boss"), "invalid choice: 'boss'"),
        (("web", "users", "--role", "admin"), "--role belongs to `stockade web passwd"),
        (("web", "deluser", "root", "admin"), "unexpected argument 'admin'"),
        (("web", "passwd", "x2", "admin"), "unexpected argument 'admin'"),
    ]
    for args, message in cases:
        r = instance.cli(*args, input="a good password\n")
        assert r.rc == 2, (args, r.err)
        assert r.one_line_error and message in r.err, (args, r.err)
    assert instance.cli("web", "users").out.split() == ["root", "admin"]
