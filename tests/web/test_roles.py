"""Dashboard roles against a real ``stockade web``: a viewer reads everything and changes
nothing (the server refuses, not only the pages), an admin does everything; the OpenAPI
document states each route's role; role changes take effect at once; the schema migration."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stockade.errors import StockadeError
from stockade.model import WebSession
from stockade.store import SqliteStore
from stockade.store.migrations import MIGRATIONS
from tests.conftest import Instance
from tests.web.conftest import PASSWORD, WebServer, add_user, csrf

VIEWER = "noc"

#: requests an admin's action succeeds with (path → JSON body); a route missing here is still
#: checked (refused for a viewer, past the role check for an admin), with an empty body
EXAMPLES: dict[str, dict[str, Any]] = {
    "/api/bans": {"address": "192.0.2.50", "duration": "1h", "reason": "by hand"},
    "/api/bans/unban": {"address": "198.51.100.7"},
}
SUCCEEDS = {
    "/api/alerts/{alert_id}/acknowledge",
    "/api/bans",
    "/api/bans/unban",
    "/api/network/sockets/accept",
}


def _operations(c: httpx.Client) -> list[tuple[str, str, dict[str, Any]]]:
    doc = c.get("/openapi.json")
    assert doc.status_code == 200
    ops = [
        (method, path, op)
        for path, item in doc.json()["paths"].items()
        for method, op in item.items()
    ]
    assert len(ops) >= 13
    return ops


def _url(path: str, alert_id: int) -> str:
    return path.replace("{alert_id}", str(alert_id)).replace("{group}", "default")


def _state(srv: WebServer, alert_id: int) -> tuple[bool, list[str]]:
    s = srv.store()
    try:
        alert = next(a for a in s.list_alerts() if a.id == alert_id)
        return alert.acknowledged, sorted(b.address for b in s.list_bans(active_at=time.time()))
    finally:
        s.close()


def _viewer_server(web: Any, instance: Instance) -> tuple[WebServer, int]:
    srv = web()
    add_user(instance, VIEWER)  # the second user: a viewer
    alert_id = srv.add_alert()
    srv.add_ban("198.51.100.7")
    return srv, alert_id


def test_every_action_is_admin_only_and_every_read_open_to_viewers(
    web: Any, instance: Instance
) -> None:
    srv, alert_id = _viewer_server(web, instance)
    before = _state(srv, alert_id)
    with srv.login(VIEWER) as c:
        token = csrf(c)
        ops = _operations(c)  # the document itself is open to viewers
        actions = [(m, p) for m, p, op in ops if m not in ("get", "head")]
        assert {p for _, p in actions} >= SUCCEEDS
        for method, path, op in ops:
            url = _url(path, alert_id)
            if method in ("get", "head"):
                assert op["x-required-role"] == "viewer", path
                if path == "/api/alerts/stream":
                    continue  # below: it streams
                r = c.request(method.upper(), url, params={"address": "198.51.100.7"})
                assert r.status_code == 200, (path, r.status_code, r.text)
                continue
            # every state-changing route: marked admin, documented 403, refused with a
            # reason, even with the session's right CSRF token
            assert op["x-required-role"] == "admin", path
            assert "403" in op["responses"] and "admin role" in op["description"], path
            r = c.request(
                method.upper(), url, json=EXAMPLES.get(path, {}), headers={"X-CSRF-Token": token}
            )
            assert r.status_code == 403, (path, r.status_code, r.text)
            detail = r.json()["detail"]
            assert "needs the admin role; noc is a viewer" in detail, detail
        with c.stream("GET", "/api/alerts/stream") as s:
            assert next(s.iter_lines()) == "retry: 2000"
    assert _state(srv, alert_id) == before  # nothing changed
    assert before == (False, ["198.51.100.7"])

    with srv.login() as admin:
        h = {"X-CSRF-Token": csrf(admin)}
        for method, path in actions:
            r = admin.request(
                method.upper(), _url(path, alert_id), json=EXAMPLES.get(path, {}), headers=h
            )
            assert r.status_code not in (401, 403), (path, r.status_code, r.text)
            if path in SUCCEEDS:
                assert r.status_code == 200, (path, r.status_code, r.text)
    assert _state(srv, alert_id) == (True, ["192.0.2.50"])


def test_the_document_states_the_roles(web: Any, instance: Instance) -> None:
    srv, _ = _viewer_server(web, instance)
    with srv.login(VIEWER) as c:
        first = c.get("/openapi.json").json()
        again = c.get("/openapi.json").json()
    assert first == again  # marking the cached document twice changes nothing
    assert "need the admin role" in first["info"]["description"]
    ack = first["paths"]["/api/alerts/{alert_id}/acknowledge"]["post"]
    assert ack["description"] == "Needs the admin role."
    assert first["paths"]["/api/overview"]["get"]["x-required-role"] == "viewer"


def test_pages_show_the_role_and_hide_actions_from_viewers(web: Any, instance: Instance) -> None:
    srv, alert_id = _viewer_server(web, instance)
    pages = ["/", "/alerts", f"/alerts/{alert_id}", "/bans", "/files", "/network"]
    with srv.login(VIEWER) as viewer, srv.login() as admin:
        for page in pages:
            text = viewer.get(page).text
            assert re.search(r'id="role" class="role role-viewer"[^>]*>viewer<', text), page
            assert "data-post" not in text, page  # no action button or form at all
            assert 'id="logout"' in text  # logging out is not an action a viewer lacks
        shown = {p: admin.get(p).text for p in pages}
        assert 'class="role role-admin"' in shown["/"]
        assert 'id="ack"' in shown[f"/alerts/{alert_id}"]
        assert ">Unban</button>" in shown["/bans"] and 'id="ban-form"' in shown["/bans"]
        assert ">Accept current listeners</button>" in shown["/network"]


def test_a_role_change_ends_the_sessions_and_takes_effect(web: Any, instance: Instance) -> None:
    srv, alert_id = _viewer_server(web, instance)
    url = f"/api/alerts/{alert_id}/acknowledge"
    with srv.login(VIEWER) as c:
        assert c.post(url, headers={"X-CSRF-Token": csrf(c)}).status_code == 403
        assert instance.cli("web", "role", VIEWER, "admin").rc == 0
        assert c.get("/api/overview").status_code == 401  # the old session has ended
    with srv.login(VIEWER) as c:
        assert c.post(url, headers={"X-CSRF-Token": csrf(c)}).status_code == 200
        assert instance.cli("web", "role", VIEWER, "viewer").rc == 0
        assert c.get("/api/overview").status_code == 401
    with srv.login(VIEWER, PASSWORD) as c:
        assert c.post(url, headers={"X-CSRF-Token": csrf(c)}).status_code == 403


def test_users_from_before_roles_become_admins(tmp_path: Path) -> None:
    db = tmp_path / "stockade.db"
    con = sqlite3.connect(db)
    for step in MIGRATIONS[:5]:
        con.executescript(step)
    con.execute("INSERT INTO web_users VALUES ('old', 'hash', 1.0, 1.0)")
    con.execute("PRAGMA user_version = 5")
    con.commit()
    con.close()
    s = SqliteStore(db)
    try:
        assert [(u.name, u.role) for u in s.web_users()] == [("old", "admin")]
        # and it is the last admin: it stays
        assert s.set_web_user("new", "h", when=2.0) is True
        new = s.web_user("new")
        assert new is not None and new.role == "viewer"
    finally:
        s.close()


def test_store_roles(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "stockade.db")
    try:
        assert s.set_web_user("ann", "h", when=1.0) is True  # first: admin
        assert s.set_web_user("bob", "h", when=1.0) is True  # then viewers
        assert s.set_web_user("cy", "h", when=1.0, role="admin") is True
        assert [(u.name, u.role) for u in s.web_users()] == [
            ("ann", "admin"),
            ("bob", "viewer"),
            ("cy", "admin"),
        ]
        now = time.time()
        s.add_web_session(WebSession("d1", "bob", "c1", now, now + 60))
        found = s.web_session("d1", now=now)
        assert found is not None and found.role == "viewer"  # read from the user
        assert s.set_web_user_role("bob", "admin") is True
        assert s.web_session("d1", now=now) is None  # a role change ends the sessions
        assert s.set_web_user_role("nobody", "admin") is False
        with pytest.raises(ValueError, match="unknown dashboard role 'root'"):
            s.set_web_user_role("bob", "root")
        with pytest.raises(ValueError, match="unknown dashboard role"):
            s.set_web_user("dee", "h", when=1.0, role="")
        for name in ("ann", "bob"):
            assert s.set_web_user_role(name, "viewer") is True
        with pytest.raises(StockadeError, match="cannot demote 'cy' to viewer"):
            s.set_web_user_role("cy", "viewer")
        with pytest.raises(StockadeError, match="cannot remove 'cy'"):
            s.delete_web_user("cy")
        with pytest.raises(StockadeError, match="last dashboard admin"):
            s.set_web_user("cy", "h2", when=2.0, role="viewer")
        assert s.web_user_hash("cy") == "h"  # the refused change left the password too
        assert s.delete_web_user("ann") is True
        # a session whose user is gone opens nothing
        s.add_web_session(WebSession("d2", "ghost", "c2", now, now + 60))
        assert s.web_session("d2", now=now) is None
    finally:
        s.close()
