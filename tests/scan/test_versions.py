"""Service version detection end to end: real services on loopback (sshd, Python servers that
greet as common services do), scanned by ``stockade scan -sV`` and by ``nmap -sV`` in the same
test; the service, product and version must be nmap's."""

from __future__ import annotations

import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.sensors.scan.nmapxml.read import read_nmap_xml
from stockade.sensors.scan.report import Service
from tests.conftest import Instance

NMAP = shutil.which("nmap")
SSHD = Path("/usr/sbin/sshd")
GREETINGS = {
    "ftp": b"220 (vsFTPd 3.0.3)\r\n",
    "smtp": b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Greeter(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        greeting: bytes = self.server.greeting  # type: ignore[attr-defined]
        self.request.sendall(greeting)
        self.request.settimeout(10)
        try:
            while self.request.recv(4096):
                pass
        except OSError:
            pass


@pytest.fixture
def greeter(request: pytest.FixtureRequest) -> Iterator[int]:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Greeter)
    server.daemon_threads = True
    server.greeting = GREETINGS[request.param]  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[int]:
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed")
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    port = _free_port()
    yield from _serving(
        port, str(SSHD), "-D", "-e", "-f", "/dev/null", "-h", str(key), "-o", "PidFile=none",
        "-o", f"ListenAddress=127.0.0.1:{port}",
    )  # fmt: skip


def _serving(port: int, *argv: str) -> Iterator[int]:
    """Run ``argv`` (a server) until the test is done; ``port`` once it listens."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _listening_http(candidates: tuple[int, ...], root: Path) -> Iterator[int]:
    """``python -m http.server`` on the first free port of ``candidates`` (on loopback)."""
    for port in candidates:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
    else:
        pytest.skip(f"ports {candidates} are all taken")
    http = ("-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root))
    yield from _serving(port, sys.executable, *http)


@pytest.fixture
def http_usual(tmp_path: Path) -> Iterator[int]:
    """HTTP where it is usual: the banner's HEAD request is matched as nmap's GetRequest."""
    yield from _listening_http((8008, 8088, 8800, 9080, 5800), tmp_path)


@pytest.fixture
def http_unusual(tmp_path: Path) -> Iterator[int]:
    """HTTP where the banner's empty lines get no answer, on ports nmap's GetRequest lists: the
    version comes from the probe sent after the banner."""
    yield from _listening_http((4567, 2869, 3872, 4660, 5427), tmp_path)


def nmap_service(port: int) -> Service | None:
    if NMAP is None:
        pytest.skip("nmap is not installed")
    out = subprocess.run(
        [NMAP, "-sV", "-Pn", "-n", "-p", str(port), "-oX", "-", "127.0.0.1"],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    (host,) = read_nmap_xml(out, "nmap")
    found = host.port(port)
    assert found is not None and found.state == "open"
    return found.service


def stockade_port(instance: Instance, port: int, *extra: str) -> dict[str, object]:
    r = instance.run("scan", "-sV", "-Pn", "-p", str(port), "127.0.0.1", "--json", *extra)
    assert r.rc == 0, r.err
    (host,) = r.json_lines()
    (found,) = host["ports"]
    assert isinstance(found, dict)
    return found


def same_as_nmap(instance: Instance, port: int) -> dict[str, object]:
    ours = stockade_port(instance, port)
    theirs = nmap_service(port)
    assert theirs is not None and theirs.product
    assert ours["service"] == theirs.name
    assert ours["product"] == theirs.product
    assert ours.get("version", "") == theirs.version
    assert ours.get("extrainfo", "") == theirs.extrainfo
    assert ours.get("cpe", []) == theirs.cpe
    return ours


def test_sshd_version_is_nmaps(instance: Instance, sshd: int) -> None:
    ours = same_as_nmap(instance, sshd)
    assert ours["product"] == "OpenSSH"
    assert str(ours["banner"]).startswith("SSH-2.0-OpenSSH_")
    assert str(ours["version"]) in str(ours["banner"]).replace("-", " ")


@pytest.mark.parametrize("greeter", sorted(GREETINGS), indirect=True)
def test_greeting_services_are_nmaps(instance: Instance, greeter: int) -> None:
    ours = same_as_nmap(instance, greeter)
    assert ours["service"] in GREETINGS


def test_table_and_xml_name_the_version(instance: Instance, sshd: int, tmp_path: Path) -> None:
    xml = tmp_path / "scan.xml"
    r = instance.run("scan", "-sV", "-Pn", "-p", str(sshd), "127.0.0.1", "-oX", str(xml))
    assert r.rc == 0, r.err
    assert f"{sshd}/tcp" in r.out and "ssh OpenSSH " in r.out
    (host,) = read_nmap_xml(xml.read_bytes(), str(xml))
    found = host.port(sshd)
    assert found is not None and found.service is not None
    assert found.service.product == "OpenSSH"
    assert 'method="probed" conf="10"' in xml.read_text()


def test_http_answer_to_the_banner_probe_is_nmaps(instance: Instance, http_usual: int) -> None:
    ours = same_as_nmap(instance, http_usual)
    assert ours["product"] == "SimpleHTTPServer"


def test_http_told_by_a_further_probe_is_nmaps(instance: Instance, http_unusual: int) -> None:
    ours = same_as_nmap(instance, http_unusual)
    assert ours["product"] == "SimpleHTTPServer" and "banner" not in ours


def test_version_intensity_zero_sends_no_further_probe(
    instance: Instance, http_unusual: int
) -> None:
    """As nmap's --version-intensity 0: what the banner shows, and no probe more."""
    ours = stockade_port(instance, http_unusual, "--version-intensity", "0")
    assert "product" not in ours and "banner" not in ours
    light = stockade_port(instance, http_unusual, "--version-light")  # GetRequest is rarity 1
    assert light["product"] == "SimpleHTTPServer"
    for extra, message in [
        (("--version-intensity", "10"), "give 0 to 9"),
        (("--version-light", "--version-all"), "contradict"),
    ]:
        r = instance.run("scan", "-sV", "-Pn", "-p", str(http_unusual), "127.0.0.1", *extra)
        assert r.rc == 2 and message in r.err
