"""The pure parts of the upgrades to TLS: which protocol a port and greeting speak, whether each
reply says yes, and LDAP's BER request and strict response reader — with examples, malformed
input and fuzzing (no network)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.sensors.scan import ldap_ber
from stockade.sensors.scan import starttls_protocols as sp
from stockade.sensors.scan.ldap_ber import BerError, start_tls_result, tlv

PORTS = sp.port_protocols()


def ldap_response(code: int, message_id: int = 1, op: int = ldap_ber.EXTENDED_RESPONSE) -> bytes:
    """An ExtendedResponse as slapd sends it: resultCode, empty matchedDN, a message."""
    result = tlv(0x0A, bytes([code])) + tlv(0x04, b"") + tlv(0x04, b"no TLS here" * (code > 0))
    return ldap_ber.message(message_id, tlv(op, result + tlv(0x8A, ldap_ber.START_TLS_OID)))


# -- which protocol -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "greeting", "proto"),
    [
        (25, b"220 mx ESMTP\r\n", "smtp"),
        (587, b"220 ready\r\n", "smtp"),  # a standard port: the first word is enough
        (2525, b"220 mx.example ESMTP Exim\r\n", "smtp"),
        (25, b"554 go away\r\n", None),
        (21, b"220 ProFTPD Server\r\n", "ftp"),
        (21, b"220-Welcome\r\n220 Ready\r\n", "ftp"),
        (2121, b"220 (vsFTPd 3.0.3)\r\n", "ftp"),
        (2121, b"220 ready\r\n", None),  # elsewhere a bare 220 says nothing
        (21, b"421 too many\r\n", None),
        (143, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n", "imap"),
        (1143, b"* OK IMAP ready\r\n", "imap"),
        (143, b"* PREAUTH logged in\r\n", None),  # no STARTTLS after PREAUTH
        (143, b"* BYE go away\r\n", None),
        (110, b"+OK Dovecot ready.\r\n", "pop3"),
        (1110, b"+OK POP3 <1896.697170952@dbc.mtview.ca.us>\r\n", "pop3"),
        (110, b"-ERR busy\r\n", None),
        (22, b"SSH-2.0-OpenSSH_9.2\r\n", None),
        (5432, b"* OK\r\n", "imap"),  # a greeting decides, whatever the port
        (143, b"", None),
    ],
)
def test_greeting_protocol(port: int, greeting: bytes, proto: str | None) -> None:
    assert sp.greeting_protocol(port, greeting, PORTS) == proto


def test_ports_a_group_adds() -> None:
    ports = sp.port_protocols({"postgres": [5433], "ftp": [2121], "imap": [21]})
    assert sp.silent_protocol(5433, ports) == sp.silent_protocol(5432, ports) == "postgres"
    assert sp.silent_protocol(389, ports) == "ldap" and sp.silent_protocol(143, ports) is None
    assert sp.greeting_protocol(2121, b"220 ready\r\n", ports) == "ftp"
    assert sp.greeting_protocol(21, b"* OK ready\r\n", ports) == "imap"  # the group's word wins
    with pytest.raises(ValueError, match="'gopher' is not one of smtp"):
        sp.port_protocols({"gopher": [70]})


@given(st.integers(0, 70000), st.binary(max_size=300))
def test_recognisers_take_any_bytes(port: int, data: bytes) -> None:
    assert sp.greeting_protocol(port, data, PORTS) in (None, *sp.GREETING_PROTOCOLS)
    for check in (sp.final_reply, sp.smtp_offers, sp.pop3_done, sp.pop3_offers, sp.line_done):
        assert isinstance(check(data), bool)
    assert sp.reply_code(data) == b"" or sp.reply_code(data).isdigit()
    caps = sp.imap_capabilities(data)
    assert caps is None or all(isinstance(c, bytes) for c in caps)
    assert sp.imap_tagged(b"a2", data) in (None, b"OK", b"NO", b"BAD")
    for proto in sp.SILENT_PROTOCOLS:
        assert sp.silent_answer(proto, data) in (None, True, False)


# -- replies ------------------------------------------------------------------------------


def test_smtp_and_ftp_replies() -> None:
    reply = b"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    assert sp.smtp_offers(reply) and sp.final_reply(reply) and sp.reply_code(reply) == b"250"
    assert sp.smtp_offers(b"250 starttls\r\n")
    assert not sp.smtp_offers(b"250-mx\r\n250 XSTARTTLSX\r\n") and not sp.smtp_offers(b"")
    assert not sp.final_reply(b"220-Welcome\r\n220-more\r\n")  # a greeting not yet whole
    assert sp.final_reply(b"220-Welcome\r\n220 Ready\r\n")
    assert sp.reply_code(b"234 AUTH TLS OK.\r\n") == b"234"
    assert sp.reply_code(b"500 'AUTH TLS': command not understood\r\n") == b"500"
    assert sp.reply_code(b"234-not the last line\r\n") == b""
    assert sp.reply_code(b"") == sp.reply_code(b"\r\n") == sp.reply_code(b"ok\r\n") == b""


def test_imap_replies() -> None:
    greeting = b"* OK [CAPABILITY IMAP4rev1 SASL-IR starttls LOGINDISABLED] ready\r\n"
    assert sp.imap_capabilities(greeting) == {
        b"IMAP4REV1",
        b"SASL-IR",
        b"STARTTLS",
        b"LOGINDISABLED",
    }
    assert sp.imap_capabilities(b"* OK ready\r\n") is None  # ask with CAPABILITY
    reply = b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"
    assert b"STARTTLS" in (sp.imap_capabilities(reply) or set())
    assert sp.imap_capabilities(b"* CAPABILITY IMAP4rev1\r\na1 OK\r\n") == {b"IMAP4REV1"}
    assert sp.imap_tagged(b"a1", reply) == b"OK"
    assert sp.imap_tagged(b"a2", b"* BYE\r\na2 bad what\r\n") == b"BAD"
    assert sp.imap_tagged(b"a2", b"a2 NO [TLS] not now\r\n") == b"NO"
    assert sp.imap_tagged(b"a2", b"xa2 OK\r\n") is None  # another tag
    assert sp.imap_tagged(b"a2", b"* OK still waiting\r\n") is None


def test_pop3_replies() -> None:
    capa = b"+OK Capability list follows\r\nTOP\r\nSTLS\r\nUIDL\r\n.\r\n"
    assert sp.pop3_done(capa) and sp.pop3_offers(capa)
    assert not sp.pop3_done(capa[:-3])  # the closing dot has not come
    assert sp.pop3_done(b"-ERR unknown command\r\n") and not sp.pop3_offers(b"-ERR\r\n")
    assert sp.pop3_done(b"+OK\r\n.\r\n") and not sp.pop3_offers(b"+OK\r\nTOP\r\n.\r\n")
    assert not sp.pop3_offers(b"+OK\r\nXSTLS\r\n.\r\n")


def test_silent_answers() -> None:
    assert sp.silent_request("postgres") == bytes.fromhex("0000000804d2162f")
    assert sp.silent_answer("postgres", b"S") is True
    assert sp.silent_answer("postgres", b"N") is False
    # an old server's error message, or anything else: not an answer to the SSLRequest
    assert sp.silent_answer("postgres", b"EFATAL") is None
    assert sp.silent_answer("postgres", b"") is None
    assert sp.silent_request("ldap") == ldap_ber.START_TLS_REQUEST
    assert sp.silent_answer("ldap", ldap_response(0)) is True
    assert sp.silent_answer("ldap", ldap_response(2)) is False  # protocolError: no TLS
    assert sp.silent_answer("ldap", b"\r\n\r\n") is None


# -- LDAP BER -----------------------------------------------------------------------------


def test_ldap_requests_are_the_known_bytes() -> None:
    # what ldapsearch -ZZ sends (message 1), and an unbind (message 2)
    start_tls, unbind = ldap_ber.START_TLS_REQUEST, ldap_ber.UNBIND_REQUEST
    assert start_tls == bytes.fromhex(
        "301d020101 7718 8016 312e332e362e312e342e312e313436362e3230303337"
    )
    assert unbind == bytes.fromhex("3005 020102 4200")
    assert tlv(0x04, b"x" * 200)[:3] == b"\x04\x81\xc8"  # a long-form length
    assert tlv(0x04, b"x" * 300)[:4] == b"\x04\x82\x01\x2c"


def test_ldap_result_codes() -> None:
    assert start_tls_result(ldap_response(0)) == 0
    assert start_tls_result(ldap_response(52)) == 52  # unavailable
    # a long-form length for the message is read the same
    short = ldap_response(0)
    long = b"\x30\x81" + short[1:]
    assert start_tls_result(long) == 0


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "cut short"),
        (b"\x30", "cut short"),
        (ldap_response(0)[:-1], "cut short"),
        (ldap_response(0) + b"\x00", "not one LDAPMessage"),  # trailing bytes
        (ldap_response(0, message_id=0), "not the answer to message 1"),  # notice of disconnect
        (ldap_response(0, op=0x61), "instead of an ExtendedResponse"),  # a BindResponse
        (b"\x30\x80\x02\x01\x01\x00\x00", "indefinite length"),
        (b"\x30\x85\x00\x00\x00\x00\x05", "bad length"),
        (b"\x1f\x01\x00", "multi-byte tag"),
        (b"\x04\x00", "not one LDAPMessage"),
        (ldap_ber.message(1, tlv(0x78, tlv(0x04, b""))), "no resultCode"),
        (ldap_ber.message(1, tlv(0x78, tlv(0x0A, b""))), "1 to 4 bytes"),
        (ldap_ber.message(1, tlv(0x78, tlv(0x0A, b"\x00" * 5))), "1 to 4 bytes"),
        (b"\x30\x05\x02\x01\x01\x78\x05", "cut short"),  # the operation overruns
    ],
)
def test_ldap_malformed_responses(data: bytes, why: str) -> None:
    with pytest.raises(BerError, match=why):
        start_tls_result(data)


def test_ldap_completeness() -> None:
    whole = ldap_response(0)
    assert ldap_ber.is_complete(whole) and ldap_ber.is_complete(whole + b"more")
    assert not ldap_ber.is_complete(whole[:5]) and not ldap_ber.is_complete(b"")
    assert ldap_ber.is_complete(b"\x30\x80")  # malformed: reading on will not mend it


@given(st.binary(max_size=200))
def test_ldap_reader_takes_any_bytes(data: bytes) -> None:
    try:
        code = start_tls_result(data)
    except BerError:
        return
    assert -(2**31) <= code < 2**31
    assert isinstance(ldap_ber.is_complete(data), bool)


@given(st.integers(0, 2**31 - 1), st.binary(max_size=40))
def test_ldap_reader_reads_what_was_built(code: int, message: bytes) -> None:
    body = code.to_bytes(max(1, (code.bit_length() + 8) // 8), "big")
    result = tlv(0x0A, body) + tlv(0x04, b"") + tlv(0x04, message)
    data = ldap_ber.message(1, tlv(ldap_ber.EXTENDED_RESPONSE, result))
    assert start_tls_result(data) == code
    for cut in range(len(data)):
        with pytest.raises(BerError):
            start_tls_result(data[:cut])


def test_silent_answers_are_whole() -> None:
    assert sp.silent_done("postgres", b"S") and not sp.silent_done("postgres", b"")
    assert sp.silent_done("ldap", ldap_response(0))
    assert not sp.silent_done("ldap", ldap_response(0)[:7])
