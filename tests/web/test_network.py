"""The network page's data for scan groups: a real scan of a namespace host, its delta
against the baseline shown by the dashboard, and accepting it there."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.conftest import Instance
from tests.netns import Namespaces, unavailable
from tests.web.conftest import csrf

TARGET = "10.79.0.2"


def test_scan_group_delta_and_accept(web: Any, instance: Instance, netns: Namespaces) -> None:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("wss"), netns.create("wst")
    netns.link(scanner, target, ["10.79.0.1/24"], [f"{TARGET}/24"])
    group = {"name": "lab", "targets": [TARGET], "ports": "1-3000", "discovery": "none"}
    scan = {"enabled": False, "workers": 2, "groups": [group]}
    srv = web(scan=scan)

    def check() -> int:
        argv = [sys.executable, "-m", "stockade", *instance.args("scan", "check")]
        return scanner.run(*argv, check=False, timeout=600).returncode

    target.serve_tcp([22])
    assert check() == 0  # the first round is the baseline
    target.serve_tcp([2222])
    assert check() == 1
    with srv.login() as c:
        n = c.get("/api/network").json()
        (g,) = n["scan"]
        assert g["group"] == "lab" and g["has_baseline"] and g["latest"]["open_ports"] == 2
        assert [(d["kind"], d["port"]) for d in g["deltas"]] == [("port-opened", 2222)]
        assert "2222" in c.get("/network").text
        r = c.post("/api/network/scan/lab/accept", headers={"X-CSRF-Token": csrf(c)})
        assert r.status_code == 200 and r.json()["version"] == 2
        assert c.get("/api/network").json()["scan"][0]["deltas"] == []
    assert check() == 0  # the CLI agrees: the baseline moved
