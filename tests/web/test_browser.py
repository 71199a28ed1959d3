"""The dashboard in a real browser: Playwright driving headless Chromium (Debian's package)
against a real ``stockade web``. Screenshots go to artifacts/screenshots/; the overview's is
also copied to docs/overview.png for the README."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import Instance
from tests.web.conftest import PASSWORD, USER, add_user, screenshots

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent.parent / "docs"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="chromium is not installed (scripts/test installs it)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None,
    )
    yield pg
    ctx.close()
    assert errors == [], errors  # no script error, no CSP violation


def shot(pg: Any, name: str) -> Path:
    path = screenshots() / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def log_in(pg: Any, url: str, user: str = USER) -> None:
    pg.goto(url + "/")
    assert "/login" in pg.url
    pg.fill("input[name=user]", user)
    pg.fill("input[name=password]", PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(url + "/")


def test_login_overview_and_logout(web: Any, page: Any) -> None:
    srv = web()
    now = time.time()
    for i, (part, sev) in enumerate(
        [("files", 3), ("logs", 2), ("logs", 2), ("sockets", 4), ("scan", 1), ("logs", 3)] * 3
    ):
        srv.add_alert(part=part, severity=sev, subject=f"subject {i}", time=now - i * 2900)
    for i in range(4):
        srv.add_ban(f"198.51.100.{i + 1}")
    srv.add_ban("198.51.100.1", created=now - 9000, until=now - 5000)
    # a wrong password first: the form says so and nothing opens
    page.goto(srv.url + "/alerts")
    page.fill("input[name=user]", USER)
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.inner_text(".error")
    shot(page, "login-failed")
    page.fill("input[name=user]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(srv.url + "/alerts")  # back where the user wanted to go
    page.click("nav >> text=Overview")
    page.wait_for_selector("svg.chart rect")
    assert page.locator("svg.chart").first.locator("rect").count() > 5
    assert "198.51.100.1" in page.inner_text("main")
    page.wait_for_selector("#live.on")
    overview = shot(page, "overview")
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(overview, DOCS / "overview.png")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(srv.url + "/alerts")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "alerts-phone")
    page.set_viewport_size({"width": 1200, "height": 900})
    page.click("#logout")
    page.wait_for_url("**/login")
    page.goto(srv.url + "/bans")
    assert "/login" in page.url  # the session is gone


def test_request_without_a_session_is_refused(web: Any, page: Any) -> None:
    srv = web()
    r = page.request.get(srv.url + "/api/alerts")
    assert r.status == 401
    page.goto(srv.url + "/files")
    assert page.url.startswith(srv.url + "/login")
    assert page.locator("input[name=password]").is_visible()
    shot(page, "refused")


def test_an_alert_appears_live_and_its_detail(web: Any, page: Any) -> None:
    srv = web()
    srv.add_alert(subject="/etc/hosts", severity=1)
    log_in(page, srv.url)
    page.goto(srv.url + "/alerts")
    page.wait_for_selector("#live.on")
    assert page.locator("#alert-rows tr").count() == 1
    srv.add_alert(
        part="files",
        kind="changed",
        subject="/usr/sbin/sshd",
        severity=4,
        detail={
            "message": "content changed, not by a package",
            "attributes": {"sha256": {"old": "aaaa", "new": "bbbb"}},
        },
    )
    row = page.wait_for_selector("#alert-rows tr.fresh")
    assert "/usr/sbin/sshd" in row.inner_text()
    assert page.locator("#alert-rows tr").count() == 2
    assert "critical" in page.inner_text("#toasts")
    shot(page, "alert-live")
    row.query_selector("a").click()
    page.wait_for_selector("#alert-message")
    assert "content changed, not by a package" in page.inner_text("#alert-message")
    assert "bbbb" in page.inner_text(".evidence")
    shot(page, "alert-detail")
    page.click("#ack")
    expect(page.locator("#ack-state")).to_have_text("acknowledged")


def test_accept_a_file_change(web: Any, page: Any, instance: Instance, tree: Path) -> None:
    instance.watch(tree)
    assert instance.run("files", "init").rc == 0
    (tree / "bin" / "ls").write_bytes(b"\x7fELF replaced")
    (tree / "lib" / "libc.so").write_bytes(b"other")
    srv = web()
    log_in(page, srv.url)
    page.goto(srv.url + "/files")
    assert page.locator("table.files tbody tr").count() == 2
    shot(page, "files")
    page.check(f"input[value='{tree / 'bin' / 'ls'}']")
    page.click("#accept-files button[type=submit]")
    expect(page.locator("table.files tbody tr")).to_have_count(1)
    assert str(tree / "lib" / "libc.so") in page.inner_text("table.files")
    rc, lines = instance.check()
    assert rc == 1
    assert [x["path"] for x in lines if "change" in x] == [str(tree / "lib" / "libc.so")]


def test_unban_an_address(web: Any, page: Any) -> None:
    srv = web()
    srv.add_ban("192.0.2.44")
    srv.add_ban("192.0.2.45")
    log_in(page, srv.url)
    page.goto(srv.url + "/bans")
    assert page.locator("#active-bans tr[data-address]").count() == 2
    shot(page, "bans")
    page.click("#active-bans tr[data-address='192.0.2.44'] button")
    expect(page.locator("#active-bans tr[data-address]")).to_have_count(1)
    assert "192.0.2.45" in page.inner_text("#active-bans")
    page.goto(srv.url + "/bans?address=192.0.2.44")
    assert "lifted" in page.inner_text("#history")
    # a manual ban from the form
    page.fill("#ban-form input[name=address]", "203.0.113.9")
    page.click("#ban-form button[type=submit]")
    page.wait_for_selector("#active-bans tr[data-address='203.0.113.9']")


def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(
    web: Any, page: Any, instance: Instance, tree: Path
) -> None:
    instance.watch(tree)
    assert instance.run("files", "init").rc == 0
    (tree / "bin" / "ls").write_bytes(b"\x7fELF replaced")
    srv = web()
    add_user(instance, "noc")  # the second user: a viewer
    srv.add_ban("192.0.2.44")
    alert_id = srv.add_alert(subject="/usr/bin/ls")
    log_in(page, srv.url, "noc")
    expect(page.locator("#role")).to_have_text("viewer")
    page.goto(srv.url + "/bans")
    assert page.locator("#active-bans tr[data-address]").count() == 1  # the ban is shown
    assert page.locator("button", has_text="Unban").count() == 0
    assert page.locator("#ban-form").count() == 0
    shot(page, "bans-viewer")
    page.goto(srv.url + "/files")
    assert page.locator("table.files tbody tr").count() == 1  # the change is shown
    assert page.locator("#accept-files, input[type=checkbox]").count() == 0
    page.goto(srv.url + "/network")
    assert page.locator("button", has_text="Accept").count() == 0
    page.goto(srv.url + f"/alerts/{alert_id}")
    assert page.locator("#ack").count() == 0
    # the buttons are gone, but the server is what refuses: a POST forged with the viewer's
    # own session cookie and CSRF token
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert token
    for url, body in [
        ("/api/bans/unban", {"address": "192.0.2.44"}),
        ("/api/files/accept", {"paths": [str(tree / "bin" / "ls")]}),
        (f"/api/alerts/{alert_id}/acknowledge", {}),
    ]:
        r = page.request.post(srv.url + url, data=body, headers={"X-CSRF-Token": token})
        assert r.status == 403, (url, r.status)
        assert "needs the admin role; noc is a viewer" in r.json()["detail"]
    page.goto(srv.url + "/bans")
    assert page.locator("#active-bans tr[data-address='192.0.2.44']").count() == 1
