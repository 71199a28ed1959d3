"""The dashboard's API against a real ``stockade web`` on loopback: login, sessions, CSRF,
the failed-login limit and log, and every page's data and action."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from stockade.model import Alert, Severity
from stockade.web.faillog import FAILREGEX
from tests.conftest import Instance
from tests.web.conftest import PASSWORD, USER, add_user, csrf, login

PAGES = ["/", "/alerts", "/alerts/1", "/bans", "/bans?address=192.0.2.1", "/files", "/network"]


def test_without_a_session_every_route_is_refused(web: Any) -> None:
    srv = web()
    with srv.login() as c:
        doc = c.get("/openapi.json")
        assert doc.status_code == 200
        spec = doc.json()
    assert spec["info"]["title"] == "stockade dashboard"
    paths = spec["paths"]
    assert {"/api/overview", "/api/alerts", "/api/bans", "/api/files", "/api/network"} <= set(paths)
    with srv.client() as anon:
        for path, ops in paths.items():
            url = re.sub(r"\{[^}]+\}", "1", path)
            for method in ops:
                r = anon.request(method.upper(), url, params={"address": "192.0.2.1"}, json={})
                assert r.status_code == 401, (method, url, r.status_code)
        assert anon.get("/openapi.json").status_code == 401
        for page in PAGES:
            r = anon.get(page)
            assert r.status_code == 303, page
            assert r.headers["location"].startswith("/login?next=")
        # a forged or stale cookie is no session either
        anon.cookies.set("stockade_session", "forged")
        assert anon.get("/api/overview").status_code == 401


def test_login_cookie_logout(web: Any) -> None:
    srv = web()
    with srv.client() as c:
        r = login(c, USER, PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "stockade_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        assert c.get("/api/overview").status_code == 200
        for page in PAGES:
            assert c.get(page).status_code == 200, page
        token = csrf(c)
        # logout needs the token too; then the old cookie opens nothing
        old = c.cookies.get("stockade_session")
        assert c.post("/logout", data={"csrf": "wrong"}).status_code == 403
        assert c.post("/logout", data={"csrf": token}).status_code == 303
    with srv.client() as again:
        again.cookies.set("stockade_session", old or "")
        assert again.get("/api/overview").status_code == 401
    # the store keeps digests of session tokens, never the tokens
    s = srv.store()
    try:
        assert s.web_session(old or "", now=time.time()) is None
    finally:
        s.close()


def test_a_removed_user_is_logged_out_at_once(web: Any, instance: Instance) -> None:
    srv = web()
    add_user(instance, "second", role="admin")  # the last admin cannot be removed
    with srv.login() as c:
        assert c.get("/api/overview").status_code == 200
        r = instance.cli("web", "deluser", USER)
        assert r.rc == 0, r.err
        assert c.get("/api/overview").status_code == 401
    with srv.client() as again:
        assert login(again, USER, PASSWORD).status_code != 303


def test_login_form_needs_its_token(web: Any) -> None:
    srv = web()
    with srv.client() as c:
        r = c.post("/login", data={"user": USER, "password": PASSWORD, "csrf": "x", "next": "/"})
        assert r.status_code == 403
        assert "stockade_session" not in r.headers.get("set-cookie", "")


def test_next_only_leads_to_this_site(web: Any) -> None:
    srv = web()
    with srv.client() as c:
        token = c.get("/login?next=//evil.example/x").text
        m = re.search(r'name="csrf" value="([^"]+)"', token)
        assert m is not None
        r = c.post(
            "/login",
            data={"user": USER, "password": PASSWORD, "csrf": m.group(1), "next": "//evil.example"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_failed_logins_are_limited_and_logged(web: Any, instance: Instance) -> None:
    srv = web(web={"login_max_failures": 3, "login_window": "10m"})
    with srv.client() as c:
        for _ in range(3):
            assert login(c, USER, "wrong password").status_code == 401
        assert login(c, 'mallory"\nfrom 10.0.0.1', "x").status_code == 429
        # even the right password waits now
        r = login(c, USER, PASSWORD)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert "too many failed logins" in r.text
    log = (instance.state / "web-auth.log").read_text().splitlines()
    assert len(log) == 3  # refused attempts are not checked, so not logged as failures
    regex = re.compile(FAILREGEX.replace("<HOST>", r"(?P<host>\S+)"))
    for line in log:
        stamp, rest = line[:19], line[19:]
        time.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        m = regex.match(rest)
        assert m is not None and m.group("host") == "127.0.0.1", line
    assert (instance.state / "web-auth.log").stat().st_mode & 0o777 == 0o600


def test_the_failed_login_log_feeds_a_logs_jail(web: Any, instance: Instance) -> None:
    """stockade's own filter engine finds the address in the log (`stockade logs test`)."""
    srv = web()
    with srv.client() as c:
        for _ in range(2):
            login(c, "root", "guess")
    r = instance.cli("logs", "test", instance.state / "web-auth.log", FAILREGEX, "--json")
    assert r.rc == 0, r.err
    lines = r.json_lines()
    hits = [x for x in lines if x.get("host") == "127.0.0.1"]
    assert len(hits) == 2, lines


def test_csrf_is_required_on_every_action(web: Any) -> None:
    srv = web()
    alert = srv.add_alert()
    with srv.login() as c:
        url = f"/api/alerts/{alert}/acknowledge"
        assert c.post(url).status_code == 403
        assert c.post(url, headers={"X-CSRF-Token": "nope"}).status_code == 403
        r = c.post(url, headers={"X-CSRF-Token": csrf(c)})
        assert r.status_code == 200 and r.json()["acknowledged"] is True
        assert c.get(f"/api/alerts/{alert}").json()["acknowledged"] is True


def test_alerts_filters_detail_and_overview(web: Any) -> None:
    srv = web()
    now = time.time()
    srv.add_alert(subject="/etc/passwd", severity=2, time=now - 7200)
    srv.add_alert(
        part="logs",
        kind="ban",
        subject="192.0.2.9",
        severity=3,
        detail={"message": "banned 192.0.2.9", "matches": ["Failed password from 192.0.2.9"]},
    )
    srv.add_alert(part="sockets", kind="listener-new", subject="tcp/0.0.0.0:4444", severity=4)
    with srv.login() as c:
        every = c.get("/api/alerts").json()
        assert [a["part"] for a in every] == ["sockets", "logs", "files"]  # newest first
        assert [a["part"] for a in c.get("/api/alerts", params={"severity": "high"}).json()] == [
            "sockets",
            "logs",
        ]
        assert [a["subject"] for a in c.get("/api/alerts", params={"part": "files"}).json()] == [
            "/etc/passwd"
        ]
        assert [a["part"] for a in c.get("/api/alerts", params={"text": "192.0.2"}).json()] == [
            "logs"
        ]
        assert len(c.get("/api/alerts", params={"since": "1h"}).json()) == 2
        assert len(c.get("/api/alerts", params={"until": str(now - 3600)}).json()) == 1
        bad = c.get("/api/alerts", params={"since": "yesterday-ish"})
        assert bad.status_code == 400 and "is not a time" in bad.json()["detail"]
        assert c.get("/api/alerts", params={"severity": "loud"}).status_code == 400
        logs = next(a for a in every if a["part"] == "logs")
        detail = c.get(f"/api/alerts/{logs['id']}").json()
        assert detail["detail"]["matches"] == ["Failed password from 192.0.2.9"]
        assert c.get("/api/alerts/999999").status_code == 404
        page = c.get(f"/alerts/{logs['id']}").text
        assert "Failed password from 192.0.2.9" in page
        o = c.get("/api/overview").json()
        assert o["severity_counts"]["critical"] == 1 and o["severity_counts"]["medium"] == 1
        assert sum(o["timeline"]["part"]["files"]) == 1
        assert sum(sum(v) for v in o["timeline"]["severity"].values()) == 3
        assert {p["part"] for p in o["parts"]} >= {"files", "logs", "sockets"}


def test_alerts_a_page_at_a_time(web: Any) -> None:
    """1,234 alerts, several at the same second: the pages join up without gaps or repeats,
    filtered or not, and the HTML page links to the next one."""
    srv = web()
    now = time.time()
    s = srv.store()
    try:
        ids = s.add_alerts(
            [
                Alert(
                    "logs",
                    "ban",
                    f"192.0.2.{i % 250}",
                    Severity.HIGH if i % 3 == 0 else Severity.LOW,
                    {"message": f"alert {i}" + (" needle" if i % 7 == 0 else "")},
                    time=now - 1000 + i // 4,
                    host="test",
                )
                for i in range(1234)
            ]
        )
    finally:
        s.close()
    newest_first = ids[::-1]

    def pages(**params: Any) -> list[int]:
        got: list[int] = []
        before = None
        while True:
            q = {**params, "limit": 100, **({"before": before} if before else {})}
            page = [a["id"] for a in c.get("/api/alerts", params=q).json()]
            got += page
            if len(page) < 100:
                return got
            before = page[-1]

    with srv.login() as c:
        assert pages() == newest_first
        high = [x for i, x in enumerate(ids) if i % 3 == 0][::-1]
        assert pages(severity="high") == high
        needles = [x for i, x in enumerate(ids) if i % 7 == 0][::-1]
        assert pages(text="needle") == needles
        html = c.get("/alerts").text
        older = re.search(r'id="older" href="([^"]+)"', html)
        assert older is not None
        second = c.get(older.group(1).replace("&amp;", "&")).text
        assert f'href="/alerts/{newest_first[100]}"' in second
        assert f'href="/alerts/{newest_first[99]}"' not in second
        assert 'data-live="prepend"' in html and 'data-live="prepend"' not in second


def test_new_alerts_stream_as_server_sent_events(web: Any) -> None:
    srv = web()
    srv.add_alert(subject="before")
    with srv.login() as c:
        got: list[dict[str, Any]] = []
        with c.stream("GET", "/api/alerts/stream") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(lines) == "retry: 2000"
            timer = threading.Timer(0.5, lambda: srv.add_alert(subject="/usr/sbin/sshd"))
            timer.start()
            event = ""
            for line in lines:
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "alert":
                    got.append(json.loads(line[5:]))
                    break
            timer.join()
        assert [a["subject"] for a in got] == ["/usr/sbin/sshd"]


def test_bans_unban_manual_ban_and_history(web: Any) -> None:
    srv = web()
    srv.add_ban("198.51.100.7")
    srv.add_ban("198.51.100.7", created=time.time() - 86400, until=time.time() - 80000)
    with srv.login() as c:
        h = {"X-CSRF-Token": csrf(c)}
        active = c.get("/api/bans").json()
        assert [b["address"] for b in active] == ["198.51.100.7"]
        assert active[0]["jail"] == "sshd" and active[0]["matches"]
        assert len(c.get("/api/bans/history", params={"address": "198.51.100.7"}).json()) == 2
        assert c.get("/api/bans/history", params={"address": "nonsense"}).status_code == 400
        r = c.post("/api/bans/unban", json={"address": "198.51.100.7"}, headers=h)
        assert r.json()["lifted"] >= 1  # the store also closes the expired ban's record
        assert c.get("/api/bans").json() == []
        hist = c.get("/api/bans/history", params={"address": "198.51.100.7"}).json()
        assert hist[0]["lifted_by"] == f"web:{USER}"
        r = c.post("/api/bans", json={"address": "203.0.113.5", "duration": "2h"}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "manual" and r.json()["jail"] == "manual"
        assert [b["address"] for b in c.get("/api/bans").json()] == ["203.0.113.5"]
        bad = c.post("/api/bans", json={"address": "not-an-ip"}, headers=h)
        assert bad.status_code == 400 and "not an IP address" in bad.json()["detail"]
        self_ban = c.post("/api/bans", json={"address": "127.0.0.1"}, headers=h)
        assert self_ban.status_code == 400  # the allowlist keeps loopback


def test_files_pending_changes_and_accept(web: Any, instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    assert instance.run("files", "init").rc == 0
    (tree / "bin" / "ls").write_bytes(b"\x7fELF trojan")
    (tree / "bin" / "ps").chmod(0o4755)
    srv = web()
    with srv.login() as c:
        p = c.get("/api/files").json()
        by = {x["path"]: x for x in p["changes"]}
        assert set(by) == {str(tree / "bin" / "ls"), str(tree / "bin" / "ps")}
        assert by[str(tree / "bin" / "ls")]["attributes"]["size"]["new"] == len(b"\x7fELF trojan")
        assert by[str(tree / "bin" / "ps")]["attributes"]["perms"] == {"old": "0755", "new": "4755"}
        assert by[str(tree / "bin" / "ps")]["classification"]
        h = {"X-CSRF-Token": csrf(c)}
        r = c.post("/api/files/accept", json={"paths": [str(tree / "bin" / "ls")]}, headers=h)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        left = [x["path"] for x in c.get("/api/files").json()["changes"]]
        assert left == [str(tree / "bin" / "ps")]
        assert c.post("/api/files/accept", json={"paths": []}, headers=h).status_code == 400
        outside = c.post("/api/files/accept", json={"paths": ["/nowhere"]}, headers=h)
        assert outside.status_code == 400 and "not in the baseline" in outside.json()["detail"]
    # the same effect as `stockade files accept`: the CLI sees only ps now
    rc, lines = instance.check()
    assert rc == 1 and [x["path"] for x in lines if "change" in x] == [str(tree / "bin" / "ps")]


def test_files_page_compares_what_the_running_daemon_found(
    web: Any, instance: Instance, tree: Path
) -> None:
    """With a daemon, the page compares the paths it found changed — not every tree — and says
    so; `full` compares everything."""
    from tests.daemonproc import Daemon

    instance.watch(tree)
    assert instance.run("files", "init").rc == 0
    srv = web()  # its configuration (logs dry-run, no sockets or scan part) serves the daemon too
    d = Daemon(instance)
    try:
        d.wait_for(r"watching \d+ folders")
        (tree / "bin" / "ls").write_bytes(b"\x7fELF trojan")
        (tree / "lib" / "libc.so").unlink()
        d.wait_alert(lambda a: a["subject"] == str(tree / "lib" / "libc.so"))
        d.wait_alert(lambda a: a["subject"] == str(tree / "bin" / "ls"))
    finally:
        assert d.stop() == 0
    (tree / "bin" / "ps").chmod(0o4755)  # after the daemon stopped: it never saw this
    ls, libc, ps = (
        str(tree / "bin" / "ls"),
        str(tree / "lib" / "libc.so"),
        str(tree / "bin" / "ps"),
    )
    with srv.login() as c:
        p = c.get("/api/files").json()
        assert p["scope"] == "daemon" and p["checked"] is not None
        assert {x["path"]: x["change"] for x in p["changes"]} == {ls: "changed", libc: "removed"}
        everything = c.get("/api/files", params={"full": "true"}).json()
        assert everything["scope"] == "full"
        assert {x["path"] for x in everything["changes"]} == {ls, libc, ps}
        page = c.get("/files").text
        assert 'id="files-scope"' in page and 'href="/files?full=1"' in page
        assert ps not in page and ps in c.get("/files?full=1").text
        # accepted elsewhere: compared again, it is gone from the list at once
        assert instance.run("files", "accept", ls).rc == 0
        assert [x["path"] for x in c.get("/api/files").json()["changes"]] == [libc]


def test_network_listeners_and_accept(web: Any) -> None:
    srv = web()
    with srv.login() as c:
        n = c.get("/api/network").json()
        assert n["sockets"]["baseline"] is None
        port = srv.url.rsplit(":", 1)[1]
        assert any(x["endpoint"] == f"tcp/127.0.0.1:{port}" for x in n["sockets"]["listeners"])
        r = c.post("/api/network/sockets/accept", headers={"X-CSRF-Token": csrf(c)})
        assert r.status_code == 200 and r.json()["version"] == 1
        n = c.get("/api/network").json()
        assert n["sockets"]["baseline"]["version"] == 1
        assert n["sockets"]["deltas"] == []
        r = c.post("/api/network/scan/nope/accept", headers={"X-CSRF-Token": csrf(c)})
        assert r.status_code == 400
        # one new listener accepted on its own (others the host may open meanwhile stay deltas)
        with socket.create_server(("127.0.0.1", 0)) as extra:
            subject = f"tcp/127.0.0.1:{extra.getsockname()[1]}"
            subjects = [d["subject"] for d in c.get("/api/network").json()["sockets"]["deltas"]]
            assert subject in subjects
            assert subject in c.get("/network").text
            h = {"X-CSRF-Token": csrf(c)}
            r = c.post("/api/network/sockets/accept", json={"endpoints": [subject]}, headers=h)
            assert r.status_code == 200 and r.json()["version"] == 2
            subjects = [d["subject"] for d in c.get("/api/network").json()["sockets"]["deltas"]]
            assert subject not in subjects
            bad = {"endpoints": ["tcp/127.0.0.1:1"]}
            r = c.post("/api/network/sockets/accept", json=bad, headers=h)
            assert r.status_code == 400 and "nothing listens there" in r.json()["detail"]


def test_security_headers(web: Any) -> None:
    srv = web()
    with srv.login() as c:
        r = c.get("/")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"


def test_tls(web: Any, tmp_path: Path) -> None:
    from tests.scan.certgen import chain

    cert, key = chain("localhost", ("127.0.0.1",), 30).write(tmp_path, "web")
    srv = web(web={"tls_cert": str(cert), "tls_key": str(key)})
    assert srv.url.startswith("https://")
    c = srv.client(verify=False)
    try:
        r = login(c, USER, PASSWORD)
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"]
        assert c.get("/api/overview").status_code == 200
    finally:
        c.close()
    # plain HTTP is not served there
    try:
        httpx.get(srv.url.replace("https://", "http://") + "/login", timeout=10)
    except httpx.HTTPError:
        pass
    else:
        raise AssertionError("plain HTTP answered on the TLS port")
