"""Certificates in a scan group: a changed certificate and one close to expiry raise their
deltas (CLI) and alerts (daemon), against a real TLS service in a namespace."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import Instance, Result
from tests.daemonproc import Daemon
from tests.netns import Link, Namespaces, unavailable
from tests.scan.certgen import chain

SERVER = Path(__file__).with_name("facts_server.py")
TARGET = "10.83.0.2"


@pytest.fixture
def lab(netns: Namespaces) -> Link:
    why = unavailable()
    if why:
        pytest.skip(why)
    return netns.link(netns.create("scs"), netns.create("sct"), ["10.83.0.1/24"], [f"{TARGET}/24"])


def serve_tls(lab: Link, folder: Path, cn: str, days: float) -> subprocess.Popen[str]:
    cert, key = chain(cn, (cn,), days=days).write(folder, cn)
    cfg = folder / f"{cn}.json"
    cfg.write_text(
        json.dumps(
            [{"port": 443, "kind": "tls", "after": "http", "cert": str(cert), "key": str(key)}]
        )
    )
    proc = lab.right.popen(sys.executable, str(SERVER), str(cfg), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready and proc.stdout.readline().strip() == "ready"
    return proc


def configure(instance: Instance, **extra: object) -> None:
    group = {"name": "web", "targets": [TARGET], "ports": "443", "discovery": "none", **extra}
    instance.config.write_text(
        tomli_w.dumps(
            {
                "files": {"enabled": False},
                "logs": {"enabled": False},
                "sockets": {"enabled": False},
                "scan": {"workers": 1, "groups": [group]},
            }
        )
    )


def check(instance: Instance, lab: Link) -> Result:
    argv = [sys.executable, "-m", "stockade", *instance.args("scan", "check", "--json")]
    r = lab.left.run(*argv, check=False, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    return Result(r.returncode, r.stdout, r.stderr)


def test_changed_and_expiring_certificates(instance: Instance, lab: Link, tmp_path: Path) -> None:
    configure(instance, cert_expiry_days=14)
    server = serve_tls(lab, tmp_path, "www.certs.test", days=200)
    assert check(instance, lab).rc == 0  # the baseline
    assert check(instance, lab).json_lines() == []
    server.kill()
    server.wait()
    serve_tls(lab, tmp_path, "new.certs.test", days=5)
    r = check(instance, lab)
    kinds = {x["kind"]: x for x in r.json_lines()}
    assert r.rc == 1 and sorted(kinds) == ["cert-changed", "cert-expiring"]
    changed, soon = kinds["cert-changed"], kinds["cert-expiring"]
    assert changed["address"] == TARGET and changed["port"] == 443
    assert "CN=www.certs.test" in changed["old"] and "CN=new.certs.test" in changed["new"]
    assert "subject" in changed["new"]  # what else changed with the fingerprint
    assert "CN=new.certs.test" in soon["old"] and "in 4 days" in soon["old"]
    # accepting the new certificate ends the change, not the expiry
    assert instance.run("scan", "accept").rc == 0
    assert [x["kind"] for x in check(instance, lab).json_lines()] == ["cert-expiring"]


def test_daemon_raises_each_certificate_alert_once(
    instance: Instance, lab: Link, tmp_path: Path
) -> None:
    configure(instance, schedule="1s", cert_expiry_days=30)
    server = serve_tls(lab, tmp_path, "a.certs.test", days=365)
    d = Daemon(instance, namespace=lab.left)
    d.wait_for("scan web: no baseline; took scan 1", timeout=120)
    server.kill()
    server.wait()
    serve_tls(lab, tmp_path, "b.certs.test", days=10)
    d.wait_alert(lambda a: a["kind"] == "cert-changed", timeout=120)
    d.wait_alert(lambda a: a["kind"] == "cert-expiring", timeout=120)
    mark = d.mark()
    for _ in range(2):
        d.wait_for(r"scan web: scan \d+, .* 1 changes", timeout=120, after=d.mark())
    alerts = d.alerts()
    assert sorted(a["kind"] for a in alerts) == ["cert-changed", "cert-expiring"]
    assert all(a["subject"] == f"web/{TARGET}:443/tcp" for a in alerts)
    assert not any("ALERT" in line for line in d.lines[mark:])
    assert d.stop() == 0
