"""UDP probe payloads and the parsers of the UDP scan, without a network: every request is
well-formed (read back by an independent DNS library or a small BER reader), bad arguments are
refused, and the nmap-payloads parser and the ICMP error parser take malformed and random
input without any error but their own."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import dnslib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.sensors.scan.udp import (
    ORIGIN_ICMP,
    ORIGIN_ICMP6,
    ORIGIN_LOCAL,
    icmp_state,
    parse_recverr,
)
from stockade.sensors.scan.udp_probes import (
    DNS_CH,
    DNS_PTR,
    DNS_TXT,
    NMAP_PAYLOADS,
    PayloadFileError,
    Payloads,
    ber_oid,
    builtin_payloads,
    dns_name,
    dns_query,
    ike_main_mode,
    load_payloads,
    memcached_request,
    netbios_name,
    netbios_status_query,
    nmap_payloads,
    ntp_request,
    parse_nmap_payloads,
    rpc_null_call,
    sip_options,
    snmp_get,
    ssdp_msearch,
    tftp_read,
)

# --- the requests ---------------------------------------------------------------------------

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)
names = st.lists(labels, min_size=0, max_size=4).map(".".join)


@settings(max_examples=300)
@given(names, st.integers(0, 0xFFFF), st.sampled_from([1, 2, 12, 16, 28, 255]))
def test_dns_queries_read_back(name: str, txid: int, qtype: int) -> None:
    record = dnslib.DNSRecord.parse(dns_query(name, qtype, txid=txid))
    assert record.header.id == txid and record.header.opcode == 0 and record.header.qr == 0
    assert len(record.questions) == 1 and not record.rr
    q = record.questions[0]
    assert (str(q.qname).rstrip("."), q.qtype, q.qclass) == (name, qtype, 1)


def test_dns_and_mdns_probes_are_the_questions_we_mean() -> None:
    table = builtin_payloads()
    dns = dnslib.DNSRecord.parse(table[53][0])
    assert (str(dns.q.qname), dnslib.QTYPE[dns.q.qtype], dns.header.rd) == (".", "NS", 1)
    mdns = dnslib.DNSRecord.parse(table[5353][0])
    assert str(mdns.q.qname) == "_services._dns-sd._udp.local." and mdns.q.qtype == DNS_PTR
    chaos = dnslib.DNSRecord.parse(dns_query("version.bind", DNS_TXT, DNS_CH))
    assert chaos.q.qclass == DNS_CH


@pytest.mark.parametrize(
    "name",
    ["a..b", ".a", "x" * 64, ".".join(["a" * 63] * 4) + ".b", "münchen.de", ".."],
)
def test_bad_dns_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="DNS name"):
        dns_name(name)


def test_dns_query_numbers_are_16_bits() -> None:
    with pytest.raises(ValueError):
        dns_query("a", 70000)
    with pytest.raises(ValueError):
        dns_query("a", txid=-1)


def test_ntp_request_is_a_client_request() -> None:
    packet = ntp_request(0x0123456789ABCDEF)
    assert len(packet) == 48
    assert packet[0] & 7 == 3 and (packet[0] >> 3) & 7 == 4  # mode client, version 4
    assert packet[40:48] == bytes.fromhex("0123456789abcdef")  # the transmit timestamp
    with pytest.raises(ValueError):
        ntp_request(1 << 64)
    with pytest.raises(ValueError):
        ntp_request(1, version=5)


def ber_read(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, value, rest) of one BER TLV, for checking our encoder independently."""
    tag, first = data[0], data[1]
    if first < 0x80:
        length, head = first, 2
    else:
        n = first & 0x7F
        length, head = int.from_bytes(data[2 : 2 + n], "big"), 2 + n
    assert len(data) >= head + length
    return tag, data[head : head + length], data[head + length :]


@pytest.mark.parametrize("version", [0, 1])
def test_snmp_get_request_is_well_formed(version: int) -> None:
    tag, message, rest = ber_read(snmp_get("public", version=version, request_id=300))
    assert (tag, rest) == (0x30, b"")
    tag, ver, message = ber_read(message)
    assert (tag, ver) == (0x02, bytes([version]))
    tag, community, message = ber_read(message)
    assert (tag, community) == (0x04, b"public")
    tag, pdu, message = ber_read(message)
    assert (tag, message) == (0xA0, b"")  # GetRequest-PDU, nothing after it
    tag, request_id, pdu = ber_read(pdu)
    assert int.from_bytes(request_id, "big", signed=True) == 300
    for _ in range(2):  # error-status and error-index: 0
        tag, value, pdu = ber_read(pdu)
        assert (tag, value) == (0x02, b"\0")
    tag, varbinds, pdu = ber_read(pdu)
    _, varbind, _ = ber_read(varbinds)
    tag, oid, value = ber_read(varbind)
    assert tag == 0x06 and oid == bytes.fromhex("2b06010201010100")  # 1.3.6.1.2.1.1.1.0
    assert value == b"\x05\x00"


def test_long_community_uses_long_ber_lengths() -> None:
    tag, message, rest = ber_read(snmp_get("c" * 300))
    assert tag == 0x30 and rest == b"" and len(message) > 300


@pytest.mark.parametrize("oid", ["1", "3.1", "1.40", "1.a.2", "1.-3", ""])
def test_bad_oids_are_refused(oid: str) -> None:
    with pytest.raises(ValueError, match="OID"):
        ber_oid(oid)


def test_oid_arcs_above_127_take_several_octets() -> None:
    assert ber_oid("1.3.6.1.4.1.311") == bytes.fromhex("06072b0601040182 37".replace(" ", ""))
    assert ber_oid("2.999") == bytes.fromhex("06028837")


def test_snmp_refuses_v3_and_oversized_ids() -> None:
    with pytest.raises(ValueError):
        snmp_get(version=3)
    with pytest.raises(ValueError):
        snmp_get(request_id=1 << 40)


def test_netbios_status_query_is_a_dns_shaped_nbstat_question() -> None:
    packet = netbios_status_query(txid=7)
    assert struct.unpack("!HHHHHH", packet[:12]) == (7, 0, 1, 0, 0, 0)
    assert packet[12] == 32 and packet[13:45] == b"CK" + b"A" * 30  # "*" and 15 NULs
    assert packet[-4:] == b"\x00\x21\x00\x01"  # NBSTAT, IN
    # RFC 1001 14.1's example: "FRED" padded with spaces
    assert netbios_name("FRED", 0x20)[1:33] == b"EGFCEFEE" + b"CA" * 11 + b"CA"
    with pytest.raises(ValueError):
        netbios_name("x" * 16)
    with pytest.raises(ValueError):
        netbios_name("tête")


def test_rpc_null_call_layout() -> None:
    call = rpc_null_call(100000, 2, xid=9)
    assert struct.unpack("!10I", call) == (9, 0, 2, 100000, 2, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        rpc_null_call(1 << 32)


def test_ike_lengths_add_up() -> None:
    packet = ike_main_mode()
    cookie, responder, next_payload, version, exchange, _flags, _mid, length = struct.unpack(
        "!8s8sBBBBII", packet[:28]
    )
    assert (cookie, responder, next_payload, version, exchange) == (
        b"stockade",
        bytes(8),
        1,
        0x10,
        2,
    )
    assert length == len(packet)
    sa_length = struct.unpack("!H", packet[30:32])[0]
    assert 28 + sa_length == len(packet)
    proposal_length = struct.unpack("!H", packet[42:44])[0]
    assert 40 + proposal_length == len(packet)
    with pytest.raises(ValueError):
        ike_main_mode(bytes(8))


def test_text_requests() -> None:
    sip = sip_options().decode()
    assert sip.startswith("OPTIONS sip:") and sip.endswith("\r\n\r\n")
    assert "CSeq: 1 OPTIONS\r\n" in sip and "Content-Length: 0\r\n" in sip
    ssdp = ssdp_msearch().decode()
    assert ssdp.startswith("M-SEARCH * HTTP/1.1\r\n") and 'MAN: "ssdp:discover"' in ssdp
    assert memcached_request() == b"\x00\x01\x00\x00\x00\x01\x00\x00stats\r\n"
    assert tftp_read("a.txt") == b"\x00\x01a.txt\x00octet\x00"
    for bad in (
        lambda: sip_options("a b"),
        lambda: ssdp_msearch("x\r\ny"),
        lambda: ssdp_msearch(mx=9),
        lambda: memcached_request("stats\r\nflush_all"),
        lambda: tftp_read("a\0b"),
        lambda: tftp_read("a", "mail"),
    ):
        with pytest.raises(ValueError):
            bad()


def test_builtin_table_covers_the_common_services() -> None:
    table = builtin_payloads()
    for port in (53, 69, 111, 123, 137, 161, 500, 1900, 5060, 5353, 11211):
        assert table[port] and all(table[port])


# --- the payload table ----------------------------------------------------------------------


def test_merged_keeps_order_drops_duplicates_and_caps() -> None:
    merged = Payloads.merged({53: [b"a", b"b"]}, {53: [b"b", b"c"], 7: [b"x"]})
    assert merged.for_port(53) == (b"a", b"b", b"c")
    assert merged.for_port(7) == (b"x",)
    assert merged.for_port(9) == (b"",)  # an empty datagram where nothing is known
    many = Payloads.merged({1: [bytes([i, j]) for i in range(20) for j in range(20)]})
    assert len(many.for_port(1)) == 255


def test_our_payloads_come_first_then_nmaps(tmp_path: Path) -> None:
    path = tmp_path / "nmap-payloads"
    path.write_text('udp 53,40000-40001 "\\x01\\x02"\nudp 53 "x"\n')
    nmap_payloads.cache_clear()
    try:
        table = load_payloads(path)
    finally:
        nmap_payloads.cache_clear()
    assert table.for_port(53) == (*builtin_payloads()[53], b"\x01\x02", b"x")
    assert table.for_port(40001) == (b"\x01\x02",)


def test_malformed_nmap_file_is_reported_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nmap-payloads"
    path.write_text('udp 53 "unterminated\n')
    nmap_payloads.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, "stockade.scan"):
            table = load_payloads(path)
        assert nmap_payloads(tmp_path / "missing") == {}
    finally:
        nmap_payloads.cache_clear()
    assert table.for_port(53) == builtin_payloads()[53]
    assert f"{path}: line 1: a string is not closed" in caplog.text


# --- the nmap-payloads parser ---------------------------------------------------------------

SAMPLE = r"""# comment
udp 7 "\x0D\x0A"   # trailing comment
udp 53,69,100-102
  "\x00\x01" "ab\"c\\"
  "\0\r\n\t"
source 500
udp 1194 "8d\xc1x\x01"
udp 9,9 "q"
"""


def test_sample_entries() -> None:
    table = parse_nmap_payloads(SAMPLE)
    assert table[7] == (b"\r\n",)
    assert table[53] == table[69] == table[101] == (b'\x00\x01ab"c\\\x00\r\n\t',)
    assert table[1194] == (b"8d\xc1x\x01",)
    assert table[9] == (b"q", b"q")  # listed twice, sent twice (the table drops one)
    assert 103 not in table and 68 not in table


@pytest.mark.skipif(not NMAP_PAYLOADS.exists(), reason="nmap is not installed")
def test_nmaps_own_file_parses() -> None:
    table = parse_nmap_payloads(NMAP_PAYLOADS.read_text(encoding="latin-1"))
    assert len(table[137]) >= 2  # several NetBIOS requests
    assert 65535 in table and 32768 in table  # the ONC RPC range
    assert all(len(v) <= 255 for v in table.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tcp 80 "x"', "expected 'udp', found 'tcp'"),
        ('"x"', "a string outside an entry"),
        ('udp "x"', "'udp' without a port list"),
        ("udp", "'udp' without a port list"),
        ("udp 53", "an entry without a payload string"),
        ('udp 53\nudp 54 "x"', "line 2: an entry without a payload string"),
        ('udp 53 x "y"', "expected a quoted payload, found 'x'"),
        ('udp 5a "x"', "is not a port list"),
        ('udp 53, "x"', "is not a port list"),
        ('udp 70000 "x"', "ports are 0-65535"),
        ('udp 9-3 "x"', "ports are 0-65535, low to high"),
        ('udp ²3 "x"', "is not a port list"),
        ('udp 53 "x', "a string is not closed"),
        ('udp 53 "\\q"', "unknown escape \\q"),
        ('udp 53 "\\x4"', "\\x needs two hex digits"),
        ('udp 53 "\\xzz"', "\\x needs two hex digits"),
        ('udp 53 "\\', "unknown escape \\(end of line)"),
        ('udp 53 "é"', "non-ASCII"),
        ('udp 53 "x" source', "'source' takes one port number"),
        ('udp 53 "x" source 5 6', "'source' takes one port number"),
        ('udp 53 "x"\nsource 500\n"y"', "line 3: a payload string after a keyword"),
    ],
)
def test_malformed_payload_files(text: str, message: str) -> None:
    with pytest.raises(PayloadFileError, match=r"^line ") as e:
        parse_nmap_payloads(text)
    assert message in str(e.value)


def test_unknown_keywords_and_their_lines_are_ignored() -> None:
    table = parse_nmap_payloads('udp 53 "x" future "whatever \\q unparsed\nudp 54 "y"')
    assert table == {53: (b"x",), 54: (b"y",)}


def escape(payload: bytes) -> str:
    return "".join(
        chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\x{b:02x}" for b in payload
    )


entries = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 20)), min_size=1, max_size=3),
        st.lists(st.binary(max_size=30), min_size=1, max_size=3),
    ),
    max_size=5,
)


@settings(max_examples=200)
@given(entries)
def test_written_entries_read_back(
    written: list[tuple[list[tuple[int, int]], list[bytes]]],
) -> None:
    lines, expected = [], {}
    for ranges, parts in written:
        plist = ",".join(f"{lo}-{min(lo + n, 65535)}" if n else str(lo) for lo, n in ranges)
        lines.append(f"udp {plist}")
        lines += [f'  "{escape(p)}"' for p in parts]
        for lo, n in ranges:
            for port in range(lo, min(lo + n, 65535) + 1):
                expected.setdefault(port, []).append(b"".join(parts))
    assert parse_nmap_payloads("\n".join(lines)) == {p: tuple(v) for p, v in expected.items()}


@settings(max_examples=500)
@given(
    st.text(
        st.sampled_from(list('udp 0123456789,-"\\x#\nsource\t\x00aAé')) | st.characters(),
        max_size=200,
    )
)
def test_random_text_gives_a_table_or_our_error(text: str) -> None:
    try:
        table = parse_nmap_payloads(text)
    except PayloadFileError as e:
        assert str(e).startswith("line ")
    else:
        assert all(0 <= p <= 65535 and v for p, v in table.items())


# --- ICMP errors --------------------------------------------------------------------------

IP_RECVERR, IPV6_RECVERR = 11, 25


def extended_error(origin: int, icmp_type: int, code: int) -> bytes:
    return struct.pack("=IBBBBII", 111, origin, icmp_type, code, 0, 0, 0) + bytes(16)


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "state"),
    [
        (ORIGIN_ICMP, 3, 3, "closed"),
        (ORIGIN_ICMP, 3, 13, "filtered"),  # administratively prohibited
        (ORIGIN_ICMP, 3, 1, "filtered"),  # host unreachable
        (ORIGIN_ICMP, 3, 4, None),  # fragmentation needed: says nothing about the port
        (ORIGIN_ICMP, 11, 0, None),  # time exceeded
        (ORIGIN_ICMP6, 1, 4, "closed"),
        (ORIGIN_ICMP6, 1, 1, "filtered"),
        (ORIGIN_ICMP6, 3, 0, None),
        (ORIGIN_LOCAL, 0, 0, None),
    ],
)
def test_icmp_errors_map_to_nmaps_states(
    origin: int, icmp_type: int, code: int, state: str | None
) -> None:
    level = 0 if origin != ORIGIN_ICMP6 else 41
    kind = IP_RECVERR if level == 0 else IPV6_RECVERR
    got = parse_recverr([(level, kind, extended_error(origin, icmp_type, code))])
    assert got == (origin, icmp_type, code)
    assert icmp_state(*got) == state


def test_recverr_without_the_message_or_short() -> None:
    assert parse_recverr([]) is None
    assert parse_recverr([(1, 2, b"x" * 40)]) is None  # another control message
    assert parse_recverr([(0, IP_RECVERR, b"\x01\x02")]) is None


@given(st.lists(st.tuples(st.sampled_from([0, 41, 1]), st.integers(0, 30), st.binary())))
def test_random_control_messages(ancdata: list[tuple[int, int, bytes]]) -> None:
    got = parse_recverr(ancdata)
    if got is not None:
        assert icmp_state(*got) in (None, "closed", "filtered")
