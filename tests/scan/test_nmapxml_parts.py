"""The nmap XML writer and reader on their own: port lists, nmap's tables, the document's
shape against nmap's DTD, certificates as nmap's ssl-cert script, malformed and hostile input."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.errors import StockadeError
from stockade.sensors.scan.nmapxml import ScanRun, nmap_xml, read_nmap_xml
from stockade.sensors.scan.nmapxml.sslcert import (
    cert_from_pem,
    cert_from_script,
    escape_rfc4514,
    rfc4514_of,
    ssl_cert_script,
)
from stockade.sensors.scan.nmapxml.tables import (
    compact_ports,
    expand_ports,
    parse_mac_prefixes,
    parse_service_names,
    vendor_of,
)
from stockade.sensors.scan.nmapxml.write import port_reason, xml_text
from stockade.sensors.scan.report import Hop, HostReport, PortReport, Service
from tests.scan.xmlcheck import dtd_errors, dtd_for, make_cert, need_tools

# --- port lists and nmap's tables --------------------------------------------------------


def test_port_lists_compact_and_expand() -> None:
    assert compact_ports([80, 1, 2, 3, 81, 5, 3]) == "1-3,5,80-81"
    assert compact_ports([]) == ""
    assert expand_ports("1-3, 5,80-81") == [1, 2, 3, 5, 80, 81]
    for bad in ("a", "1-", "-5", "3-1", "70000", "1-70000", "1--2", "²"):
        with pytest.raises(ValueError, match="port"):
            expand_ports(bad)


@given(st.sets(st.integers(0, 65535), max_size=200))
def test_port_lists_round_trip(ports: set[int]) -> None:
    assert expand_ports(compact_ports(ports)) == sorted(ports)


@given(st.text(max_size=40))
def test_expand_ports_raises_only_value_error(text: str) -> None:
    try:
        ports = expand_ports(text)
    except ValueError:
        return
    assert all(0 <= p <= 65535 for p in ports)


def test_service_table_parser_skips_junk() -> None:
    text = (
        "# nmap-services\n"
        "ssh\t22/tcp\t0.182286\t# Secure Shell Login\n"
        "ssh\t22/udp\t0.003905\n"
        "other-ssh\t22/tcp\t0.1\n"  # the first name of a port wins
        "broken\n"
        "bad\tx/tcp\t0.1\n"
        "huge\t99999/tcp\t0.1\n"
        "\n"
    )
    assert parse_service_names(text) == {(22, "tcp"): "ssh", (22, "udp"): "ssh"}


def test_mac_vendor_takes_the_longest_prefix() -> None:
    vendors = parse_mac_prefixes(
        "# comment\n0050C2 IEEE Registration Authority\n0050C2F Acme\nzz\n"
    )
    assert vendors == {"0050C2": "IEEE Registration Authority", "0050C2F": "Acme"}
    assert vendor_of("00:50:c2:f1:22:33", vendors) == "Acme"
    assert vendor_of("00-50-C2-01-22-33", vendors) == "IEEE Registration Authority"
    assert vendor_of("02:00:00:00:00:01", vendors) is None


@pytest.mark.parametrize(
    ("proto", "state", "scan", "reason"),
    [
        ("tcp", "open", "syn", "syn-ack"),
        ("tcp", "open", "connect", "syn-ack"),
        ("tcp", "closed", "syn", "reset"),
        ("tcp", "closed", "connect", "conn-refused"),
        ("tcp", "filtered", "syn", "no-response"),
        ("udp", "open", "syn", "udp-response"),
        ("udp", "closed", "syn", "port-unreach"),
        ("udp", "open|filtered", "syn", "no-response"),
    ],
)
def test_port_reasons_are_nmaps(proto: str, state: str, scan: str, reason: str) -> None:
    assert port_reason(PortReport(1, proto, state), scan) == reason


# --- certificates -------------------------------------------------------------------------


def test_ssl_cert_script_has_nmaps_shape() -> None:
    _key, cert, model = make_cert()
    script = ssl_cert_script(model)
    out = script.get("output", "").splitlines()
    # nmap's output line names four attributes; its tables (and ours) hold all
    assert (
        out[0] == "Subject: commonName=lab.example/organizationName=Lab & Co, <Test>/countryName=DE"
    )
    assert out[1] == "Subject Alternative Name: DNS:lab.example, IP Address:10.9.0.1"
    assert out[2] == "Issuer: commonName=Lab CA"
    before = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S")
    assert out[3] == f"Not valid before: {before}"
    assert out[4].startswith("Not valid after:  ")
    assert out[5] == f"SHA-256: {model.sha256}"
    tables = {t.get("key"): t for t in script.findall("table")}
    subject = [(e.get("key"), e.text) for e in tables["subject"].findall("elem")]
    assert subject == sorted(subject)  # nmap lists the keys sorted
    assert ("organizationName", "Lab & Co, <Test>") in subject
    validity = {e.get("key"): e.text for e in tables["validity"].findall("elem")}
    assert validity["notBefore"] == before
    assert script.find("elem[@key='sha256']") is not None


def test_certificate_comes_back_from_our_script_and_from_pem() -> None:
    _key, cert, model = make_cert()
    script = ssl_cert_script(model)
    assert cert_from_script(script) == model
    pem = cert.public_bytes(Encoding.PEM).decode()
    assert cert_from_pem(pem) == model
    with_pem = ET.fromstring(ET.tostring(script))
    ET.SubElement(with_pem, "elem", key="pem").text = pem
    with_pem.set("output", "Subject: garbage")  # the PEM is what counts when it is there
    assert cert_from_script(with_pem) == model
    # a script with nmap's tables only: the attributes in the usual order
    bare = ET.fromstring(ET.tostring(script))
    for elem in bare.findall("elem"):
        if elem.get("key", "").endswith("_rfc4514"):
            bare.remove(elem)
    got = cert_from_script(bare)
    assert got is not None
    assert got.subject == "CN=lab.example,OU=a/b,O=Lab & Co\\, \\<Test\\>,C=DE"
    assert (got.issuer, got.sans, got.sha256) == (model.issuer, model.sans, model.sha256)
    assert cert_from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----") is None
    assert cert_from_script(ET.Element("script", id="ssl-cert", output="nothing")) is None


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16).filter(
    lambda s: s.strip() == s or True
)


@given(names)
def test_rfc4514_strings_match_cryptography(value: str) -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, value),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b"),
        ]
    )
    assert rfc4514_of([("commonName", value), ("emailAddress", "a@b")]) == name.rfc4514_string()
    assert escape_rfc4514("") == ""


# --- whole documents ----------------------------------------------------------------------


SSH = Service(
    "ssh", "OpenSSH", "9.2p1 Debian 2", "protocol 2.0", ostype="Linux",
    cpe=["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"],
)  # fmt: skip


def sample_hosts() -> list[HostReport]:
    _key, _cert, model = make_cert()
    up = HostReport(
        "10.9.0.2",
        name='lab & "friends" <x>',
        state="up",
        reason="syn-ack",
        mac="02:42:ac:11:00:02",
        ports=[PortReport(p, "tcp", "closed") for p in range(1000, 1030)]
        + [
            PortReport(22, "tcp", "open", banner="SSH-2.0-Test\x01\x7f <&>", service=SSH),
            PortReport(443, "tcp", "open", cert=model),
            PortReport(444, "tcp", "filtered"),
            PortReport(53, "udp", "open|filtered"),
        ],
        path=[
            Hop(1, "10.9.0.1", [0.0004, None]),
            Hop(2, None, [None]),
            Hop(3, "10.9.0.2", [0.002]),
        ],
    )
    v6 = HostReport("fd09::2", state="up", reason="user-set", ports=[PortReport(80, "tcp", "open")])
    down = HostReport("10.9.0.3", state="down", reason="no-response")
    return [up, v6, down]


def sample_run() -> ScanRun:
    args = "stockade scan -p 1-100,443 --exclude 10.9.0.9 -oX x.xml 10.9.0.0/24"
    return ScanRun(args=args, start=time.time(), tcp=[*range(1, 101), 443], udp=[53])


def test_document_is_valid_by_nmaps_dtd(tmp_path: Path) -> None:
    need_tools("xmllint")
    path = tmp_path / "scan.xml"
    path.write_text(nmap_xml(sample_run(), sample_hosts(), time.time() + 2, error="interrupted"))
    assert dtd_errors(path, dtd_for("stockade", tmp_path)) == []
    # against nmap's own DTD the scanner's name is the one complaint
    (complaint,) = dtd_errors(path, dtd_for("nmap", tmp_path))
    assert 'Value "stockade" for attribute scanner' in complaint


def test_document_says_what_nmap_says(tmp_path: Path) -> None:
    text = nmap_xml(sample_run(), sample_hosts(), time.time() + 2)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
    comment = text.splitlines()[2]
    assert "--" not in comment[4:-3] and "-&#45;exclude" in comment
    root = ET.fromstring(text)
    assert root.get("args") == sample_run().args and root.get("xmloutputversion") == "1.05"
    infos = [(i.get("type"), i.get("protocol"), i.get("services")) for i in root.iter("scaninfo")]
    assert infos == [("syn", "tcp", "1-100,443"), ("udp", "udp", "53")]
    (host, v6) = root.findall("host")  # the down host is counted, not listed (as nmap)
    assert root.find("runstats/hosts").attrib == {"up": "2", "down": "1", "total": "3"}
    assert root.find("runstats/finished").get("exit") == "success"
    assert [a.get("addrtype") for a in host.findall("address")] == ["ipv4", "mac"]
    assert host.find("address[@addrtype='mac']").get("addr") == "02:42:AC:11:00:02"
    assert host.find("hostnames/hostname").attrib == {"name": 'lab & "friends" <x>', "type": "user"}
    (extra,) = host.findall("ports/extraports")
    assert extra.attrib == {"state": "closed", "count": "30"}
    assert extra.find("extrareasons").attrib == {
        "reason": "reset",
        "count": "30",
        "proto": "tcp",
        "ports": "1000-1029",
    }
    listed = [(p.get("protocol"), p.get("portid")) for p in host.findall("ports/port")]
    assert listed == [("tcp", "22"), ("tcp", "443"), ("tcp", "444"), ("udp", "53")]
    ssh = host.find("ports/port[@portid='22']")
    assert ssh.find("script[@id='banner']").get("output") == "SSH-2.0-Test\\x01\x7f <&>"
    assert ssh.find("service").attrib == {
        "name": "ssh", "product": "OpenSSH", "version": "9.2p1 Debian 2",
        "extrainfo": "protocol 2.0", "ostype": "Linux", "method": "probed", "conf": "10",
    }  # fmt: skip
    assert [c.text for c in ssh.findall("service/cpe")] == SSH.cpe
    hops = [h.attrib for h in host.findall("trace/hop")]
    assert hops == [
        {"ttl": "1", "ipaddr": "10.9.0.1", "rtt": "0.40"},
        {"ttl": "3", "ipaddr": "10.9.0.2", "rtt": "2.00"},
    ]
    assert v6.find("address").attrib == {"addr": "fd09::2", "addrtype": "ipv6"}


def test_detected_services_come_back_and_table_guesses_do_not() -> None:
    (host, _v6) = read_nmap_xml(nmap_xml(sample_run(), sample_hosts(), time.time()))
    ssh, https = host.port(22), host.port(443)
    assert ssh is not None and ssh.service == SSH
    assert https is not None and https.service is None
    (soft,) = read_nmap_xml(_one_port_document('<service name="ftp" method="probed" conf="10"/>'))
    assert soft.ports[0].service == Service("ftp")
    (guess,) = read_nmap_xml(_one_port_document('<service name="ftp" method="table" conf="3"/>'))
    assert guess.ports[0].service is None  # nmap-services' name for the port, no detection


def _one_port_document(service: str) -> str:
    return (
        '<nmaprun><host><status state="up"/><address addr="10.0.0.1" addrtype="ipv4"/>'
        f'<ports><port protocol="tcp" portid="21"><state state="open"/>{service}</port></ports>'
        "</host></nmaprun>"
    )


def test_extraports_fold_more_than_25() -> None:
    def folded(n: int) -> int:
        host = HostReport(
            "10.9.0.2", state="up", ports=[PortReport(p, "tcp", "closed") for p in range(1, n + 1)]
        )
        root = ET.fromstring(nmap_xml(sample_run(), [host], time.time()))
        return len(root.findall("host/ports/extraports"))

    assert (folded(25), folded(26)) == (0, 1)


def test_our_document_reads_back() -> None:
    hosts = sample_hosts()
    up, v6, _down = hosts
    back = read_nmap_xml(nmap_xml(sample_run(), hosts, time.time()), "scan.xml")
    assert [h.address for h in back] == ["10.9.0.2", "fd09::2"]
    got = back[0]
    assert (got.name, got.state, got.reason, got.mac) == (up.name, "up", "syn-ack", up.mac)
    assert [(p.port, p.proto, p.state) for p in got.ports] == [
        (p.port, p.proto, p.state) for p in sorted(up.ports, key=lambda p: (p.proto, p.port))
    ]
    assert got.port(22).banner == xml_text(up.port(22).banner or "")
    assert got.port(443).cert == up.port(443).cert
    assert [(h.ttl, h.address, h.rtts) for h in got.path or []] == [
        (1, "10.9.0.1", [0.0004]),
        (2, None, []),
        (3, "10.9.0.2", [0.002]),
    ]
    assert back[1].ports == v6.ports


port_states = st.sampled_from(["open", "closed", "filtered", "open|filtered"])
printable = st.text(st.characters(min_codepoint=32, blacklist_categories=("Cs",)), max_size=30)


@st.composite
def reports(draw: st.DrawFn) -> HostReport:
    ports = draw(
        st.dictionaries(
            st.tuples(st.integers(0, 65535), st.sampled_from(["tcp", "udp"])),
            port_states,
            max_size=60,
        )
    )
    report = HostReport(
        str(draw(st.ip_addresses())),
        name=draw(st.none() | printable.filter(bool)),
        state="up",
        reason=draw(st.sampled_from(["user-set", "syn-ack", "echo-reply"])),
        mac=draw(st.none() | st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))),
    )
    for (port, proto), state in ports.items():
        banner = draw(st.none() | printable) if state == "open" else None
        report.ports.append(PortReport(port, proto, state, banner=banner))
    report.ports.sort(key=lambda p: (p.proto, p.port))
    return report


@settings(max_examples=60, deadline=None)
@given(st.lists(reports(), max_size=4))
def test_any_report_round_trips(hosts: list[HostReport]) -> None:
    back = read_nmap_xml(nmap_xml(sample_run(), hosts, time.time()), "x.xml")
    key = [(h.address, h.name, h.state, h.reason, h.mac, h.ports) for h in hosts]
    assert [(h.address, h.name, h.state, h.reason, h.mac, h.ports) for h in back] == key


@given(st.text(max_size=50))
def test_any_text_makes_well_formed_xml(text: str) -> None:
    host = HostReport("10.9.0.2", name=text or None, state="up", reason=text)
    host.ports.append(PortReport(1, "tcp", "open", banner=text))
    ET.fromstring(nmap_xml(ScanRun(args=text, start=0), [host], 1, error=text))


# --- hostile and malformed input ----------------------------------------------------------

BOMB = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [
<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
]>
<nmaprun>&b;</nmaprun>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<nmaprun>&x;</nmaprun>
"""
HEAD = '<?xml version="1.0"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner="nmap">\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "scan.xml:1: not well-formed XML (no element found)"),
        (HEAD + "<host>\n</nmaprun>", "scan.xml:5: not well-formed XML (mismatched tag)"),
        (BOMB, "scan.xml:3: refused: EntitiesForbidden"),
        (EXTERNAL, "scan.xml:2: refused: EntitiesForbidden"),
        ("<nmaprunx/>", "scan.xml:1: <nmaprunx> is not <nmaprun>"),
        (HEAD + "<host/>\n</nmaprun>", "scan.xml:4: <host> has no <status>"),
        (
            HEAD + '<host><status state="up"/>\n<address addr="AA:BB:CC:DD:EE:FF" addrtype="mac"/>'
            "</host></nmaprun>",
            "scan.xml:4: <host> has no IPv4 or IPv6 <address>",
        ),
        (
            HEAD + '<host><status state="up"/><address addr="10.0.0.1"/><ports>\n'
            '<port protocol="tcp" portid="http"><state state="open"/></port>'
            "</ports></host></nmaprun>",
            "scan.xml:5: <port> portid 'http' is not a number within 0-65535",
        ),
        (
            HEAD + '<host><status state="up"/><address addr="10.0.0.1"/><ports>'
            '<port protocol="tcp" portid="1"/></ports></host></nmaprun>',
            "scan.xml:4: <port> has no <state>",
        ),
        (
            HEAD + '<host><status state="up"/><address addr="10.0.0.1"/><ports>'
            '<extraports state="closed" count="2">\n<extrareasons reason="reset" count="2" '
            'ports="5-1"/></extraports></ports></host></nmaprun>',
            "scan.xml:5: <extrareasons> ports: '5-1'",
        ),
    ],
)
def test_malformed_xml_is_one_line_naming_file_and_line(text: str, message: str) -> None:
    with pytest.raises(StockadeError) as caught:
        read_nmap_xml(text, "scan.xml")
    said = str(caught.value)
    assert said.startswith(message), said
    assert "\n" not in said


@given(st.binary(max_size=300))
def test_any_bytes_give_reports_or_a_stockade_error(data: bytes) -> None:
    try:
        hosts = read_nmap_xml(data, "fuzz.xml")
    except StockadeError as e:
        assert re.match(r"fuzz\.xml:\d+: ", str(e)) and "\n" not in str(e)
        return
    assert isinstance(hosts, list)


values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    [
        "",
        "1",
        "22",
        "²",
        "65536",
        "1-3",
        "tcp",
        "up",
        "open",
        "ipv6",
        "mac",
        "9999-12-31T23:59:59-01:00",
    ]
)


@st.composite
def nmap_documents(draw: st.DrawFn) -> str:
    """nmap-shaped documents with arbitrary values where nmap puts values."""

    def attrs(*names: str) -> dict[str, str]:
        return {
            n: xml_text(draw(values)) for n in draw(st.lists(st.sampled_from(names), unique=True))
        }

    root = ET.Element("nmaprun")
    for _ in range(draw(st.integers(0, 2))):
        host = ET.SubElement(root, "host", attrs("starttime", "endtime"))
        if draw(st.booleans()):
            ET.SubElement(host, "status", attrs("state", "reason"))
        for _ in range(draw(st.integers(0, 2))):
            ET.SubElement(host, "address", attrs("addr", "addrtype"))
        ET.SubElement(host, "times", attrs("srtt"))
        ports = ET.SubElement(host, "ports")
        extra = ET.SubElement(ports, "extraports", attrs("state", "count"))
        ET.SubElement(extra, "extrareasons", attrs("reason", "proto", "ports"))
        port = ET.SubElement(ports, "port", attrs("protocol", "portid"))
        ET.SubElement(port, "state", attrs("state"))
        script = ET.SubElement(
            port, "script", {"id": draw(st.sampled_from(["banner", "ssl-cert"])), **attrs("output")}
        )
        for key in draw(
            st.lists(st.sampled_from(["pem", "sha256", "subject_rfc4514"]), unique=True)
        ):
            ET.SubElement(script, "elem", key=key).text = xml_text(draw(values))
        table = ET.SubElement(script, "table", key=draw(st.sampled_from(["subject", "validity"])))
        ET.SubElement(
            table, "elem", key=draw(st.sampled_from(["commonName", "notBefore", "x"]))
        ).text = xml_text(draw(values))
        trace = ET.SubElement(host, "trace")
        ET.SubElement(trace, "hop", attrs("ttl", "ipaddr", "rtt"))
    return ET.tostring(root, encoding="unicode")


@settings(max_examples=300, deadline=None)
@given(nmap_documents())
def test_nmap_shaped_documents_give_reports_or_a_stockade_error(text: str) -> None:
    try:
        hosts = read_nmap_xml(text, "fuzz.xml")
    except StockadeError as e:
        assert re.match(r"fuzz\.xml:\d+: <\w+> ", str(e)) and "\n" not in str(e)
        return
    for host in hosts:
        assert host.address and all(0 <= p.port <= 65535 for p in host.ports)
