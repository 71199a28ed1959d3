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
OTHER = "10.79.0.3"  # the same namespace: it has the same ports


def test_scan_group_delta_and_accept(web: Any, instance: Instance, netns: Namespaces) -> None:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("wss"), netns.create("wst")
    netns.link(scanner, target, ["10.79.0.1/24"], [f"{TARGET}/24", f"{OTHER}/24"])
    group = {"name": "lab", "targets": [TARGET, OTHER], "ports": "1-3000", "discovery": "none"}
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
        assert g["group"] == "lab" and g["has_baseline"] and g["latest"]["open_ports"] == 4
        assert sorted((d["kind"], d["address"], d["port"]) for d in g["deltas"]) == [
            ("port-opened", TARGET, 2222),
            ("port-opened", OTHER, 2222),
        ]
        page = c.get("/network").text
        assert "2222" in page and f"Accept {OTHER}" in page
        h = {"X-CSRF-Token": csrf(c)}
        # one host first: the other's change stands
        r = c.post("/api/network/scan/lab/accept", json={"hosts": [OTHER]}, headers=h)
        assert r.status_code == 200 and r.json()["version"] == 2
        left = c.get("/api/network").json()["scan"][0]["deltas"]
        assert [(d["address"], d["port"]) for d in left] == [(TARGET, 2222)]
        bad = c.post("/api/network/scan/lab/accept", json={"hosts": ["10.79.0.77"]}, headers=h)
        assert bad.status_code == 400 and "neither scan" in bad.json()["detail"]
        r = c.post("/api/network/scan/lab/accept", headers=h)  # the whole scan
        assert r.status_code == 200 and r.json()["version"] == 3
        assert c.get("/api/network").json()["scan"][0]["deltas"] == []
    assert check() == 0  # the CLI agrees: the baseline moved
