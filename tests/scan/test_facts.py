"""``stockade scan -sV`` against real services in a namespace: greeting servers (SSH, FTP, a
MySQL-like binary greeting, one with terminal escapes), ``python -m http.server`` that says
nothing until asked, TLS servers with a chain made by the test (root → intermediate → leaf with
SANs; one expiring, one chosen by SNI, one on an unusual port, one after SMTP STARTTLS), a port
that accepts and never speaks and one that resets."""

from __future__ import annotations

import hashlib
import http.server
import json
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stockade.sensors.scan.certs import cert_changes, expiring
from stockade.sensors.scan.report import Cert
from tests.conftest import Instance, need_tool
from tests.netns import Link, Namespaces, unavailable
from tests.scan.certgen import Chain, chain, now

SERVER = Path(__file__).with_name("facts_server.py")
TARGET, TARGET6, NAME = "10.78.0.2", "fd78::2", "web.facts.test"
SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
FTP = b"220-Welcome to the facts FTP service\r\n220 Ready\r\n"
MYSQL = b"J\x00\x00\x00\n8.0.36\x00\x1b\x00\x00\x00\x01\x02"
TERMINAL = b"\x1b[2J\x1b]0;owned\x07login: "
IMAP = b"* OK [CAPABILITY IMAP4rev1] facts-test ready\r\n"
ODD = b"odd-port TLS service ready\r\n"
PORTS = [21, 22, 25, 443, 993, 2323, 3306, 4433, 7000, 7002, 8000, 8443]


@dataclass
class Lab:
    link: Link
    web: Chain  # port 443 with the SNI NAME
    nosni: Chain  # port 443 without SNI
    imap: Chain  # port 993, expiring in 5 days
    odd: Chain  # port 4433 (TLS where no TLS is expected)
    mail: Chain  # port 25 after STARTTLS
    files: Path


def _wait_ready(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready or proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{what} did not start")


def _http_server(link: Link, port: int, root: Path) -> None:
    root.mkdir(exist_ok=True)
    link.right.popen(
        sys.executable, "-m", "http.server", str(port), "--bind", "::", "-d", str(root),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        if link.left.can_connect(TARGET, port, timeout=0.5):
            return
    raise RuntimeError(f"http.server on {port} did not start")


@pytest.fixture
def lab(netns: Namespaces, tmp_path: Path) -> Iterator[Lab]:
    why = unavailable()
    if why:
        pytest.skip(why)
    scanner, target = netns.create("sfacts"), netns.create("tfacts")
    link = netns.link(
        scanner, target, ["10.78.0.1/24", "fd78::1/64"], [f"{TARGET}/24", f"{TARGET6}/64"]
    )
    # the name resolves inside the scanner namespace only (ip netns exec mounts this file)
    etc = Path("/etc/netns") / scanner.name
    etc.mkdir(parents=True)
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{TARGET} {NAME}\n")
    try:
        chains = {
            "web": chain(NAME, (NAME, "www.facts.test", TARGET), days=200),
            "nosni": chain("no-sni.facts.test", ("no-sni.facts.test",), days=300),
            "imap": chain("imap.facts.test", ("imap.facts.test",), days=5),
            "odd": chain("odd.facts.test", ("odd.facts.test",), days=100),
            "mail": chain("mail.facts.test", ("mail.facts.test",), days=60),
        }
        files = tmp_path / "certs"
        paths = {k: [str(p) for p in c.write(files, k)] for k, c in chains.items()}
        config: list[dict[str, Any]] = [
            {"port": 22, "kind": "greet", "text": SSH.hex()},
            {"port": 21, "kind": "greet", "text": FTP.hex()},
            {"port": 3306, "kind": "greet", "text": MYSQL.hex()},
            {"port": 2323, "kind": "greet", "text": TERMINAL.hex()},
            {"port": 7000, "kind": "silent"},
            {"port": 7002, "kind": "reset"},
            {"port": 443, "kind": "tls", "after": "http", "cert": paths["nosni"][0],
             "key": paths["nosni"][1], "sni": {NAME: paths["web"]}},
            {"port": 993, "kind": "tls", "text": IMAP.hex(), "cert": paths["imap"][0],
             "key": paths["imap"][1]},
            {"port": 4433, "kind": "tls", "text": ODD.hex(), "cert": paths["odd"][0],
             "key": paths["odd"][1]},
            {"port": 25, "kind": "smtp", "cert": paths["mail"][0], "key": paths["mail"][1]},
        ]  # fmt: skip
        cfg = tmp_path / "services.json"
        cfg.write_text(json.dumps(config))
        proc = target.popen(sys.executable, str(SERVER), str(cfg), stdout=subprocess.PIPE)
        _wait_ready(proc, "the facts services")
        _http_server(link, 8000, tmp_path / "www")
        _http_server(link, 8443, tmp_path / "www")  # plain HTTP on a port where TLS is expected
        yield Lab(link, files=files, **chains)
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def scan(instance: Instance, lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    # development mode: an unclosed socket or a forgotten task would be reported
    argv = [sys.executable, "-X", "dev", "-m", "stockade", *instance.args("scan", *args)]
    r = lab.link.left.run(*argv, check=False, timeout=300)
    assert "ResourceWarning" not in r.stderr and "Task was destroyed" not in r.stderr
    assert "never awaited" not in r.stderr and "Traceback" not in r.stderr
    return r


def scan_json(instance: Instance, lab: Lab, *args: str) -> dict[int, dict[str, Any]]:
    r = scan(instance, lab, *args, "--json")
    assert r.returncode == 0, r.stderr
    (host,) = [json.loads(x) for x in r.stdout.splitlines()]
    return {p["port"]: p for p in host["ports"]}


def _iso(when: Any) -> str:
    return str(when.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _openssl(pem: bytes, tmp: Path, *args: str) -> str:
    path = tmp / "one.pem"
    path.write_bytes(pem)
    openssl = need_tool("openssl")
    return subprocess.run(
        [openssl, "x509", "-in", str(path), "-noout", *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_banners_and_certificates(instance: Instance, lab: Lab, tmp_path: Path) -> None:
    ports = scan_json(instance, lab, "-sV", "-p", ",".join(map(str, PORTS)), NAME)
    assert sorted(p for p, v in ports.items() if v["state"] == "open") == PORTS

    # services that greet: their first lines, non-printables escaped
    assert ports[22]["banner"] == SSH.decode().strip()
    assert ports[21]["banner"] == "220-Welcome to the facts FTP service\n220 Ready"
    assert ports[3306]["banner"] == "J\\x00\\x00\\x00\\x0a8.0.36\\x00\\x1b\\x00\\x00\\x00\\x01\\x02"
    assert ports[2323]["banner"] == "\\x1b[2J\\x1b]0;owned\\x07login: "
    # http.server says nothing until asked: the HEAD probe's answer
    handler = http.server.SimpleHTTPRequestHandler
    http_banner = f"HTTP/1.0 200 OK\nServer: {handler.server_version} {handler.sys_version}"
    assert ports[8000]["banner"] == ports[8443]["banner"] == http_banner
    assert "certificate" not in ports[8443]  # a TLS port that does not speak TLS
    # a port that never speaks, one that resets: open, with no facts
    for quiet in (7000, 7002):
        assert ports[quiet]["state"] == "open"
        assert "banner" not in ports[quiet] and "certificate" not in ports[quiet]

    # TLS on 443, chosen by the SNI the target name gave, the banner read over TLS
    web = Cert.from_json(ports[443]["certificate"])
    leaf = lab.web.leaf.cert
    assert web.subject == leaf.subject.rfc4514_string()
    assert (
        web.subject == _openssl(lab.web.leaf.pem, tmp_path, "-subject", "-nameopt", "RFC2253")[8:]
    )
    assert web.issuer == lab.web.intermediate.cert.subject.rfc4514_string()
    assert web.issuer == _openssl(lab.web.leaf.pem, tmp_path, "-issuer", "-nameopt", "RFC2253")[7:]
    assert web.sans == [f"DNS:{NAME}", "DNS:www.facts.test", f"IP:{TARGET}"]
    assert (web.not_before, web.not_after) == (
        _iso(leaf.not_valid_before_utc),
        _iso(leaf.not_valid_after_utc),
    )
    assert web.sha256 == hashlib.sha256(lab.web.leaf.der).hexdigest()
    fingerprint = _openssl(lab.web.leaf.pem, tmp_path, "-fingerprint", "-sha256")
    assert web.sha256 == fingerprint.split("=", 1)[1].replace(":", "").lower()
    # the chain as sent: leaf, then intermediate (the root is not sent)
    assert [c["sha256"] for c in web.chain] == [
        hashlib.sha256(lab.web.leaf.der).hexdigest(),
        hashlib.sha256(lab.web.intermediate.der).hexdigest(),
    ]
    assert web.chain[1]["issuer"] == lab.web.root.cert.subject.rfc4514_string()
    assert ports[443]["banner"] == "HTTP/1.0 200 OK\nServer: facts-test/1.0"

    # IMAPS greets over TLS; its certificate expires in 5 days
    imap = Cert.from_json(ports[993]["certificate"])
    assert imap.sha256 == hashlib.sha256(lab.imap.leaf.der).hexdigest()
    assert ports[993]["banner"] == IMAP.decode().strip()
    assert expiring(imap, now(), 30) and not expiring(imap, now(), 3)
    assert not expiring(web, now(), 30)
    # another intermediate of the same name: the issuer reads the same
    assert cert_changes(web, imap) == ["fingerprint", "subject", "sans", "validity", "chain"]
    assert cert_changes(web, Cert.from_json(web.to_json())) == []

    # TLS where none was expected: found by its hang-up after the probe
    odd = Cert.from_json(ports[4433]["certificate"])
    assert odd.sha256 == hashlib.sha256(lab.odd.leaf.der).hexdigest()
    assert ports[4433]["banner"] == ODD.decode().strip()

    # SMTP: the greeting, and the certificate after STARTTLS
    assert ports[25]["banner"] == "220 mail.facts.test ESMTP facts-test"
    mail = Cert.from_json(ports[25]["certificate"])
    assert mail.sha256 == hashlib.sha256(lab.mail.leaf.der).hexdigest()
    assert len(mail.chain) == 2


def test_by_address_over_ipv6_without_tls_ports(instance: Instance, lab: Lab) -> None:
    """No SNI for an address; with --tls-ports none the TLS services are still found by how
    they answer the plain probe."""
    ports = scan_json(instance, lab, "-sV", "--tls-ports", "none", "-p", "22,443,993", TARGET6)
    assert ports[22]["banner"] == SSH.decode().strip()
    assert ports[443]["certificate"]["sha256"] == hashlib.sha256(lab.nosni.leaf.der).hexdigest()
    assert ports[443]["certificate"]["subject"] == lab.nosni.leaf.cert.subject.rfc4514_string()
    assert ports[993]["certificate"]["sha256"] == hashlib.sha256(lab.imap.leaf.der).hexdigest()


def test_table_shows_banner_and_certificate(instance: Instance, lab: Lab) -> None:
    r = scan(instance, lab, "-sV", "-p", "22,443,7000", NAME)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["PORT", "STATE", "SERVICE"]
    row = {ln.split()[0]: ln for ln in lines[2:] if "/tcp" in ln}
    # the service and version where nmap's probes tell them, else the banner's first line
    assert row["22/tcp"].endswith("ssh OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)")
    expiry = _iso(lab.web.leaf.cert.not_valid_after_utc)[:10]
    assert row["443/tcp"].endswith(f"[CN={NAME},O=Facts\\, Test Inc., expires {expiry}]")
    assert row["443/tcp"].split()[2] == "HTTP/1.0"
    assert row["7000/tcp"].split() == ["7000/tcp", "open"]


def test_without_sv_there_are_no_facts(instance: Instance, lab: Lab) -> None:
    ports = scan_json(instance, lab, "-p", "22,443", TARGET)
    assert all("banner" not in p and "certificate" not in p for p in ports.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tls-ports", "443", "127.0.0.1"), "--tls-ports is only used with -sV"),
        (("-sV", "--tls-ports", "U:853", "127.0.0.1"), "TLS ports are TCP ports"),
        (("-sV", "--tls-ports", "https", "127.0.0.1"), "--tls-ports: 'https' is not a port"),
        (("-sV", "--tls-ports", "", "127.0.0.1"), "--tls-ports: empty port list"),
    ],
)
def test_bad_tls_ports_are_one_line(
    instance: Instance, args: tuple[str, ...], message: str
) -> None:
    r = instance.run("scan", *args)
    assert r.rc == 2
    assert message in r.err and r.one_line_error
