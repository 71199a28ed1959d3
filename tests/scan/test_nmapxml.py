"""``stockade scan -oX`` against nmap on the same namespace host: both files valid by nmap's
DTD, both read back to the same hosts and ports, ndiff sees no port difference between them
and does see a port opened between two stockade scans; ssl-cert shaped as nmap's script shapes
it for the same certificate; ``-oX -``, an interrupted scan, and bad ``-oX`` arguments."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from stockade.sensors.scan.nmapxml import read_nmap_xml
from stockade.sensors.scan.nmapxml.sslcert import ssl_cert_script
from stockade.sensors.scan.report import HostReport
from tests.conftest import Instance
from tests.netns import Link, Namespace, Namespaces
from tests.scan.xmlcheck import dtd_errors, dtd_for, make_cert, need_tools

OPEN = [22, 80, 443]


@pytest.fixture
def hosts(netns: Namespaces) -> Link:
    need_tools("nmap", "xmllint", "ndiff")
    scanner, target = netns.create("sxml"), netns.create("txml")
    link = netns.link(
        scanner, target, ["10.79.0.1/24", "fd79::1/64"], ["10.79.0.2/24", "fd79::2/64"]
    )
    target.serve_tcp(OPEN)
    return link


def stockade(instance: Instance, ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stockade", *instance.args("scan", *args)]
    done = ns.run(*argv, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def summary(host: HostReport) -> tuple[str, str, str | None, list[tuple[int, str, str]]]:
    return host.address, host.state, host.mac, [(p.port, p.proto, p.state) for p in host.ports]


def ndiff(a: Path, b: Path, *args: str) -> str:
    done = subprocess.run(
        ["ndiff", *args, str(a), str(b)], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


@pytest.mark.parametrize("address", ["10.79.0.2", "fd79::2"])
def test_same_host_same_file_as_nmap(
    instance: Instance, hosts: Link, tmp_path: Path, address: str
) -> None:
    ours, theirs = tmp_path / "stockade.xml", tmp_path / "nmap.xml"
    stockade(instance, hosts.left, "-sS", "-p", "1-1000", "-oX", str(ours), address)
    family = ["-6"] if ":" in address else []
    hosts.left.run("nmap", "-n", "-Pn", "-sS", *family, "-p", "1-1000", "-oX", str(theirs), address)

    assert dtd_errors(theirs, dtd_for("nmap", tmp_path)) == []
    assert dtd_errors(ours, dtd_for("stockade", tmp_path)) == []

    (mine,) = read_nmap_xml(ours.read_text(), str(ours))
    (nmaps,) = read_nmap_xml(theirs.read_text(), str(theirs))
    assert summary(mine) == summary(nmaps)
    assert len(mine.ports) == 1000 and [p.port for p in mine.open_ports()] == OPEN
    (link,) = json.loads(hosts.right.run("ip", "-j", "link", "show", "dev", hosts.right_if).stdout)
    assert mine.mac == link["address"]

    diff = ET.fromstring(ndiff(theirs, ours, "--xml"))
    assert diff.find(".//hostdiff") is None, ET.tostring(diff, encoding="unicode")
    text = ndiff(theirs, ours)
    assert re.search(r"^\+stockade \S+ scan initiated", text, re.M)


def test_ndiff_shows_a_port_opened_between_two_scans(
    instance: Instance, hosts: Link, tmp_path: Path
) -> None:
    before, after = tmp_path / "before.xml", tmp_path / "after.xml"
    ports = ["-p", "1-1000,8080"]
    stockade(instance, hosts.left, *ports, "-oX", str(before), "10.79.0.2")
    hosts.right.serve_tcp([8080])
    stockade(instance, hosts.left, *ports, "-oX", str(after), "10.79.0.2")
    text = ndiff(before, after)
    assert re.search(r"^\+8080/tcp\s+open\s+http-proxy$", text, re.M), text
    assert re.search(r"^-Not shown: 998 closed ports$", text, re.M), text
    assert re.search(r"^\+Not shown: 997 closed ports$", text, re.M), text
    assert not re.search(r"^[-+](22|80|443)/tcp", text, re.M)


def test_ssl_cert_is_shaped_as_nmaps_script(hosts: Link, tmp_path: Path) -> None:
    key, cert, model = make_cert()
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    server = ["openssl", "s_server", "-quiet", "-accept", "8443"]
    files = ["-cert", str(tmp_path / "cert.pem"), "-key", str(tmp_path / "key.pem")]
    hosts.right.popen(*server, *files, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not hosts.left.can_connect("10.79.0.2", 8443):
        assert time.monotonic() < deadline, "openssl s_server did not start"
        time.sleep(0.2)
    out = tmp_path / "nmap.xml"
    nmap = ["nmap", "-n", "-Pn", "-sT", "-p", "8443", "--script", "ssl-cert", "-oX", str(out)]
    hosts.left.run(*nmap, "10.79.0.2")

    (host,) = read_nmap_xml(out.read_text(), str(out))
    assert host.port(8443) is not None and host.port(8443).cert == model  # type: ignore[union-attr]

    theirs = ET.parse(out).getroot().find(".//script[@id='ssl-cert']")
    assert theirs is not None
    ours = ssl_cert_script(model)

    def tables(script: ET.Element) -> dict[str | None, list[tuple[str | None, str | None]]]:
        keys = ("subject", "issuer", "validity")
        found = {t.get("key"): t for t in script.findall("table")}
        return {k: [(e.get("key"), e.text) for e in found[k].findall("elem")] for k in keys}

    def lines(script: ET.Element) -> list[str]:
        labels = ("Subject:", "Subject Alternative Name:", "Issuer:", "Not valid")
        return [ln for ln in script.get("output", "").splitlines() if ln.startswith(labels)]

    assert tables(ours) == tables(theirs)
    assert lines(ours) == lines(theirs)


def test_xml_to_stdout_replaces_the_table(instance: Instance, hosts: Link) -> None:
    done = stockade(instance, hosts.left, "-sT", "-p", "22,81", "-oX", "-", "10.79.0.2")
    assert done.stdout.startswith("<?xml") and "PORT" not in done.stdout
    (host,) = read_nmap_xml(done.stdout, "stdout")
    assert [(p.port, p.state) for p in host.ports] == [(22, "open"), (81, "closed")]
    root = ET.fromstring(done.stdout)
    assert root.find("scaninfo").get("type") == "connect"  # type: ignore[union-attr]
    assert root.find(".//port[@portid='81']/state").get("reason") == "conn-refused"  # type: ignore[union-attr]


def test_interrupted_scan_leaves_a_whole_file(
    instance: Instance, hosts: Link, tmp_path: Path
) -> None:
    out = tmp_path / "partial.xml"
    argv = [
        sys.executable,
        "-m",
        "stockade",
        *instance.args("scan", "-Pn", "-p", "22", "-oX", str(out)),
    ]
    # the first host answers at once; the silent ones after it take seconds each
    proc = hosts.left.popen(
        *argv, "10.79.0.2", "10.79.0.100-120", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while "</host>" not in (out.read_text() if out.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, "the first host was not written"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    (host,) = read_nmap_xml(out.read_text(), str(out))
    assert host.address == "10.79.0.2" and [p.port for p in host.open_ports()] == [22]
    finished = ET.parse(out).getroot().find("runstats/finished")
    assert finished is not None and finished.get("exit") == "error"
    assert finished.get("errormsg") == "interrupted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-oX", "/nonexistent/folder/scan.xml"), "-oX /nonexistent/folder/scan.xml: cannot write"),
        (("-oX", "-", "--json"), "-oX - and --json both write to standard output"),
    ],
)
def test_bad_xml_output_is_one_line(
    instance: Instance, args: tuple[str, ...], message: str
) -> None:
    r = instance.run("scan", *args, "-p", "1", "127.0.0.1")  # refused before anything is sent
    assert r.rc == 2 and r.out == ""
    assert message in r.err and r.one_line_error
