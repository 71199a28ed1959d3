"""Certificates behind in-protocol upgrades: real asyncio servers on loopback speak SMTP, IMAP
(capabilities in the greeting, or asked for), POP3, FTP, PostgreSQL and LDAP, each offering the
upgrade with a certificate chain the test made, or not offering it; the scan's service facts must
show exactly the certificate the server has, say which upgrade gave it, send nothing but the
upgrade's own commands, and show no certificate and no error where there is no upgrade."""

from __future__ import annotations

import glob
import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from stockade.sensors.scan import ldap_ber
from stockade.sensors.scan.facts import PortFacts, service_facts
from stockade.sensors.scan.nmapxml import read_nmap_xml
from stockade.sensors.scan.report import Cert
from tests.conftest import Instance, need_tool
from tests.scan.certgen import Chain, chain
from tests.scan.starttls_servers import LDAP_START_TLS, SSL_REQUEST, Servers, Service

KINDS = ("smtp", "imap", "imap-ask", "pop3", "ftp", "postgres", "ldap")
# what each kind of client may say: the upgrade's commands, nothing else (no login, no mail)
SAID = {
    "smtp": {b"EHLO stockade.invalid", b"STARTTLS", b"QUIT"},
    "imap": {b"a1 CAPABILITY", b"a2 STARTTLS", b"a3 LOGOUT"},
    "pop3": {b"CAPA", b"STLS", b"QUIT"},
    "ftp": {b"AUTH TLS", b"QUIT"},
}
QUIET = {("garbage", "ldap"), ("silent", "postgres")}  # not that protocol, on its port
PROTO = {"imap-ask": "imap"}  # the protocol each kind records as tls_via


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


def _ctx(made: Chain, folder: Path, stem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*made.write(folder, stem))
    return ctx


def _scan(services: list[Service], *, silent_extra: bool = True) -> dict[int, PortFacts]:
    silent = {
        k: [s.port for s in services if s.kind == k or (s.kind, k) in QUIET]
        for k in ("postgres", "ldap")
    }
    return service_facts(
        "127.0.0.1",
        [s.port for s in services],
        tls_ports=(),
        starttls_ports=silent if silent_extra else None,
    )


def test_each_upgrade_gives_the_servers_certificate(servers: Servers, tmp_path: Path) -> None:
    made = {k: chain(f"{k}.facts.test", (f"{k}.facts.test",), days=40) for k in KINDS}
    services = []
    for k in KINDS:
        services.append(servers.serve(Service(k, True, _ctx(made[k], tmp_path, k))))
    found = _scan(services)
    for s in services:
        facts = found[s.port]
        assert facts.error == "" and facts.tls and facts.full_chain, (s.kind, facts)
        assert facts.cert is not None
        leaf, mid = made[s.kind].leaf, made[s.kind].intermediate
        assert facts.cert.sha256 == hashlib.sha256(leaf.der).hexdigest()
        assert [c["sha256"] for c in facts.cert.chain] == [
            hashlib.sha256(leaf.der).hexdigest(),
            hashlib.sha256(mid.der).hexdigest(),
        ]
        assert facts.cert.subject == leaf.cert.subject.rfc4514_string()
        assert facts.cert.tls_via == PROTO.get(s.kind, s.kind)
        said = SAID.get(PROTO.get(s.kind, s.kind))
        if said is not None:
            assert set(s.heard) <= said, s.heard
        assert s.heard[0] in (SSL_REQUEST, LDAP_START_TLS) or said is not None
    by_kind = {s.kind: found[s.port] for s in services}
    # the greeting is the banner; a silent protocol's one-byte or BER answer is none
    assert by_kind["imap"].banner is not None and by_kind["imap"].banner.startswith("* OK [CAP")
    assert by_kind["ftp"].banner == "220-facts FTP\n220-line two\n220-line three"
    assert by_kind["postgres"].banner is None and by_kind["ldap"].banner is None
    # IMAP with the capabilities in its greeting is not asked for them again
    imap = next(s for s in services if s.kind == "imap")
    assert b"a1 CAPABILITY" not in imap.heard


def test_no_upgrade_offered_gives_no_certificate_and_no_error(
    servers: Servers, tmp_path: Path
) -> None:
    made = chain("none.facts.test", ("none.facts.test",), days=40)
    ctx = _ctx(made, tmp_path, "none")
    services = [servers.serve(Service(k, offers=False, ctx=ctx)) for k in KINDS]
    services += [servers.serve(Service(k, offers=False, ctx=ctx)) for k in ("garbage", "silent")]
    found = _scan(services)
    for s in services:
        facts = found[s.port]
        assert facts.cert is None and not facts.tls and facts.error == "", (s.kind, facts)
        said = SAID.get(PROTO.get(s.kind, s.kind))
        if said is not None:
            assert set(s.heard) <= said - {b"a2 STARTTLS", b"STARTTLS", b"STLS"}, s.heard
    by_kind = {s.kind: found[s.port] for s in services}
    assert by_kind["postgres"].banner is None and by_kind["ldap"].banner is None  # N, refusal
    # an answer on an LDAP port that is not LDAP: kept as the banner, escaped
    assert by_kind["garbage"].banner == "0\\x03garbage, not BER"
    # a service that never speaks on a PostgreSQL port: the SSLRequest, once, and no banner
    quiet = next(s for s in services if s.kind == "silent")
    assert quiet.heard == [SSL_REQUEST] and by_kind["silent"].banner is None


def test_silent_protocols_only_on_their_ports(servers: Servers, tmp_path: Path) -> None:
    """A PostgreSQL or LDAP server on a port nobody named is sent the generic probe only."""
    made = chain("pg.facts.test", ("pg.facts.test",), days=40)
    ctx = _ctx(made, tmp_path, "pg")
    services = [servers.serve(Service(k, offers=True, ctx=ctx)) for k in ("postgres", "ldap")]
    found = _scan(services, silent_extra=False)
    for s in services:
        assert found[s.port].cert is None
        assert s.heard and SSL_REQUEST not in s.heard and LDAP_START_TLS not in s.heard


def test_the_outputs_show_the_upgrade(servers: Servers, tmp_path: Path, instance: Instance) -> None:
    made = chain("imap.facts.test", ("imap.facts.test",), days=40)
    ctx = _ctx(made, tmp_path, "imap")
    port = servers.serve(Service("imap", offers=True, ctx=ctx)).port
    args = ("scan", "-sT", "-Pn", "-sV", "-p", str(port), "127.0.0.1")

    r = instance.run(*args, "--json")
    assert r.rc == 0, r.err
    (p,) = json.loads(r.out)["ports"]
    assert p["certificate"]["tls_via"] == "imap"
    assert Cert.from_json(p["certificate"]).tls_via == "imap"

    r = instance.run(*args)
    assert r.rc == 0, r.err
    expiry = made.leaf.cert.not_valid_after_utc.strftime("%Y-%m-%d")
    assert f"expires {expiry}, via imap]" in r.out

    xml = tmp_path / "scan.xml"
    r = instance.run(*args, "-oX", str(xml))
    assert r.rc == 0, r.err
    assert '<elem key="tls_via">imap</elem>' in xml.read_text()
    (host,) = read_nmap_xml(xml.read_text(), str(xml))
    (back,) = host.ports
    assert back.cert is not None and back.cert.tls_via == "imap"


def _group(instance: Instance, **extra: object) -> None:
    group = {"name": "db", "targets": ["127.0.0.1"], "discovery": "none", "scan": "connect"}
    instance.config.write_text(
        tomli_w.dumps(
            {
                "files": {"enabled": False},
                "logs": {"enabled": False},
                "sockets": {"enabled": False},
                "scan": {"workers": 1, "groups": [{**group, **extra}]},
            }
        )
    )


def test_a_group_names_a_postgres_port(
    servers: Servers, tmp_path: Path, instance: Instance
) -> None:
    """``starttls_ports`` reaches the scanner: the certificate behind PostgreSQL's SSLRequest on
    an unusual port is recorded and, expiring soon, raises ``cert-expiring``."""
    made = chain("db.facts.test", ("db.facts.test",), days=5)
    port = servers.serve(Service("postgres", True, _ctx(made, tmp_path, "db"))).port
    _group(instance, ports=str(port), starttls_ports={"postgres": [port]}, cert_expiry_days=14)
    assert instance.run("scan", "check").rc == 0  # the baseline
    r = instance.run("scan", "check", "--json")
    (alert,) = r.json_lines()
    assert r.rc == 1 and alert["kind"] == "cert-expiring" and alert["port"] == port
    assert "CN=db.facts.test" in alert["old"]


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ({"gopher": [70]}, "starttls_ports.gopher"),
        ({"postgres": [70000]}, "port 70000: ports are 1-65535"),
    ],
)
def test_bad_starttls_ports_are_one_line(
    instance: Instance, ports: dict[str, list[int]], message: str
) -> None:
    _group(instance, starttls_ports=ports)
    r = instance.run("scan", "check")
    assert r.rc == 2 and message in r.err and r.one_line_error, r.err


def test_a_server_that_says_yes_and_does_not_upgrade(servers: Servers, tmp_path: Path) -> None:
    made = chain("liar.facts.test", ("liar.facts.test",), days=40)
    liar = servers.serve(Service("imap-liar", True, _ctx(made, tmp_path, "liar")))
    facts = _scan([liar])[liar.port]
    assert facts.cert is None and not facts.tls
    assert facts.error.startswith("STARTTLS (imap): ") and "\n" not in facts.error
    assert facts.banner is not None and facts.banner.startswith("* OK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgresql(tmp_path: Path) -> Iterator[tuple[int, Chain]]:
    """A real PostgreSQL server on loopback with ``ssl = on`` and a certificate the test made,
    run as the ``postgres`` user in a folder of its own (its cluster is removed afterwards)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="stockade-pg-"))
    made = chain("pg.facts.test", ("pg.facts.test",), days=30)
    cert, key = made.write(folder, "server")
    key.chmod(0o600)
    shutil.chown(folder, "postgres")
    for path in (cert, key):
        shutil.chown(path, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    bindir = Path(bins[-1]).parent
    data = folder / "data"
    subprocess.run(
        [*as_pg, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = _free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(folder),
        "ssl": "on",
        "ssl_cert_file": str(cert),
        "ssl_key_file": str(key),
        "fsync": "off",
    }
    options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
    server = subprocess.Popen(
        [*as_pg, bindir / "postgres", "-D", data, "-p", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, "postgres did not start"
            time.sleep(0.1)
        yield port, made
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_real_postgresql_server(postgresql: tuple[int, Chain]) -> None:
    port, made = postgresql
    facts = service_facts("127.0.0.1", [port], tls_ports=(), starttls_ports={"postgres": [port]})
    got = facts[port]
    assert got.error == "" and got.cert is not None and got.cert.tls_via == "postgres"
    assert got.cert.sha256 == hashlib.sha256(made.leaf.der).hexdigest()
    assert len(got.cert.chain) == 2 and got.banner is None


@pytest.mark.parametrize("kind", ["smtp", "imap", "pop3", "ftp", "postgres", "ldap"])
def test_openssl_upgrades_with_the_test_servers_too(
    servers: Servers, tmp_path: Path, kind: str
) -> None:
    """The test servers are faithful: ``openssl s_client -starttls`` gets the same certificate
    from them (and its LDAP request is byte for byte the one stockade sends)."""
    made = chain(f"{kind}.facts.test", (f"{kind}.facts.test",), days=30)
    s = servers.serve(Service(kind, True, _ctx(made, tmp_path, kind)))
    r = subprocess.run(
        [need_tool("openssl"), "s_client", "-starttls", kind, "-connect", f"127.0.0.1:{s.port}"],
        input=b"", capture_output=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    pem = re.search(rb"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----", r.stdout)
    assert pem is not None and ssl.PEM_cert_to_DER_cert(pem[0].decode()) == made.leaf.der
    if kind == "ldap":
        assert s.heard[0] == LDAP_START_TLS == ldap_ber.START_TLS_REQUEST
