"""The pure parts of service facts: the banner sanitiser, TLS recogniser, certificate
decoding of chains the test makes, the expiry and change helpers, and the chain read from a
real TLS handshake over memory buffers (no network)."""

from __future__ import annotations

import hashlib
import re
import ssl
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.sensors.scan.banner import (
    GENERIC_PROBE,
    HTTP_PROBE,
    LIMIT,
    Waits,
    is_text,
    looks_like_tls,
    probe_for,
    sanitize,
)
from stockade.sensors.scan.certs import cert_changes, decode_chain, expiring, iso_utc, parse_time
from stockade.sensors.scan.report import Cert
from stockade.sensors.scan.tls import client_context, peer_chain
from tests.scan.certgen import chain, issue, name, now

_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|t|\\)")


def unescape(text: str) -> bytes:
    """The bytes a sanitised line stands for (the inverse of the escaping)."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return "\t" if e == "t" else "\\" if e == "\\" else chr(int(e[1:], 16))

    return _ESCAPE.sub(one, text).encode("latin-1")


# -- banners ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "SSH-2.0-OpenSSH_9.2p1 Debian-2"),
        (b"\r\n\r\n220 ftp ready\r\n", "220 ftp ready"),  # leading blank lines skipped
        (b"220-a\r\n220-b\r\n220-c\r\n220 d\r\n", "220-a\n220-b\n220-c"),  # MAX_LINES lines
        (b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n<html>", "HTTP/1.0 200 OK\nServer: x"),
        # of an HTTP response, the status and the Server header: Date changes every time
        (
            b"HTTP/1.1 400 Bad Request\r\nDate: Thu, 26 Nov 2026 17:21:36 GMT\r\n"
            b"Content-Type: text/html\r\nserver: Apache/2.4.62\r\n\r\n",
            "HTTP/1.1 400 Bad Request\nserver: Apache/2.4.62",
        ),
        (b"HTTP/1.1 204 No Content\r\nDate: now\r\n\r\n", "HTTP/1.1 204 No Content"),
        (b"a\rb\nc", "a\nb\nc"),  # CR, LF and CRLF all end a line
        (b"tab\there \\ back", "tab\\there \\\\ back"),
        (b"\x1b[2J\x1b]0;owned\x07login: ", "\\x1b[2J\\x1b]0;owned\\x07login: "),
        (b"caf\xc3\xa9 ok", "caf\\xc3\\xa9 ok"),
        (b"J\x00\x00\x00\n8.0.36\x00", "J\\x00\\x00\\x00\\x0a8.0.36\\x00"),  # binary: whole
        (b"", ""),
        (b"\r\n\r\n", ""),
    ],
)
def test_sanitize_examples(data: bytes, expected: str) -> None:
    assert sanitize(data) == expected


def test_sanitize_never_cuts_an_escape() -> None:
    assert sanitize(b"\xff" * 100, limit=10) == "\\xff\\xff"
    assert sanitize(b"x" * 1000) == "x" * LIMIT
    # the cut falls on a line break: no trailing newline is left
    assert sanitize(b"abcd\nefgh", limit=5) == "abcd"


@settings(max_examples=400)
@given(st.binary(max_size=2048), st.integers(1, 300), st.integers(1, 6))
def test_sanitize_is_bounded_and_printable(data: bytes, limit: int, lines: int) -> None:
    out = sanitize(data, limit=limit, max_lines=lines)
    assert len(out) <= limit
    assert all(" " <= c <= "~" or c == "\n" for c in out)
    assert out.count("\n") < lines
    assert not out.startswith("\n") and not out.endswith("\n")


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)))
def test_sanitize_keeps_what_it_shows(parts: list[bytes]) -> None:
    """Unescaped, the banner is made of the input's lines (of its first bytes if binary)."""
    data = b"\r\n".join(parts)
    out = sanitize(data)
    if not out:
        return
    shown = [unescape(line) for line in out.split("\n")]
    if is_text(data[:LIMIT]):
        # each shown line is a line of the input, in order (the last may be cut short)
        source = iter(p for p in parts if p)
        for i, line in enumerate(shown):
            last = i == len(shown) - 1
            assert any(p == line or (last and p.startswith(line)) for p in source)
    else:
        assert len(shown) == 1 and data.startswith(shown[0])


def test_plain_text_is_unchanged() -> None:
    line = b"220 mail.example.org ESMTP Postfix (Debian/GNU)"
    assert sanitize(line + b"\r\n") == line.decode()


def test_is_text() -> None:
    assert is_text(b"SSH-2.0-x\r\n") and is_text(b"")
    assert not is_text(b"abc\x00def")
    assert not is_text(bytes(range(0x80, 0x100)))


@pytest.mark.parametrize(
    ("data", "tls"),
    [
        (b"\x15\x03\x03\x00\x02\x02\x46", True),  # TLS 1.2 alert: protocol version
        (b"\x16\x03\x01\x00\x5c\x02", True),  # a handshake record
        (b"\x15\x03\x05\x00\x02", False),  # no such TLS version
        (b"\x15\x03", False),
        (b"HTTP/1.1 400 Bad Request\r\n\r\nThe plain HTTP request was sent to HTTPS port", True),
        (b"Client sent an HTTP request to an HTTPS server.\n", True),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False),
        (b"", False),
    ],
)
def test_looks_like_tls(data: bytes, tls: bool) -> None:
    assert looks_like_tls(data) is tls


@given(st.binary(max_size=600))
def test_recognisers_take_any_bytes(data: bytes) -> None:
    assert isinstance(looks_like_tls(data), bool)


def test_probes() -> None:
    assert probe_for(80) == probe_for(8080) == HTTP_PROBE
    assert probe_for(22) == probe_for(4433) == GENERIC_PROBE
    # harmless: a read-only HTTP request, or empty lines, long enough for TLS to hang up
    assert HTTP_PROBE.startswith(b"HEAD ") and set(GENERIC_PROBE) == {13, 10}
    assert len(GENERIC_PROBE) >= 5


def test_waits_follow_the_round_trip_time() -> None:
    assert Waits.for_rtt(None, 1.0) == Waits()
    fast = Waits.for_rtt(0.0002, 0.1)
    assert fast == Waits()  # a fast host waits no less than a slow service needs
    slow = Waits.for_rtt(0.8, 2.5)
    assert slow.greet == 10.0 and slow.answer == 15.0 and slow.connect == 7.5
    assert slow.settle == pytest.approx(2.0)
    assert Waits.for_rtt(100.0, 100.0) == Waits(10.0, 10.0, 15.0, 2.0)


# -- certificates -------------------------------------------------------------------------


def test_decode_a_chain() -> None:
    made = chain("web.facts.test", ("web.facts.test", "10.0.0.5", "fd00::5"), days=90)
    cert = decode_chain([made.leaf.der, made.intermediate.der])
    leaf = made.leaf.cert
    assert cert.subject == leaf.subject.rfc4514_string()
    assert cert.subject.startswith("CN=web.facts.test,O=Facts\\, Test Inc.")
    assert cert.issuer == made.intermediate.cert.subject.rfc4514_string()
    assert cert.sans == ["DNS:web.facts.test", "IP:10.0.0.5", "IP:fd00::5"]
    assert cert.not_before == leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert.not_after == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert.sha256 == hashlib.sha256(made.leaf.der).hexdigest()
    assert [c["sha256"] for c in cert.chain] == [
        hashlib.sha256(d).hexdigest() for d in (made.leaf.der, made.intermediate.der)
    ]
    assert cert.chain[1]["subject"] == made.intermediate.cert.subject.rfc4514_string()
    assert cert.chain[1]["issuer"] == made.root.cert.subject.rfc4514_string()
    assert Cert.from_json(cert.to_json()) == cert


def test_decode_without_sans_and_with_a_broken_chain_entry() -> None:
    self_signed = issue(name("bare"), None, ca=False, days=1)
    cert = decode_chain([self_signed.der, b"not a certificate"])
    assert cert.sans == [] and cert.subject == cert.issuer == "CN=bare"
    assert cert.chain[1] == {
        "subject": "",
        "issuer": "",
        "sha256": hashlib.sha256(b"not a certificate").hexdigest(),
        "not_after": "",
    }


@pytest.mark.parametrize("chain_ders", [[], [b""], [b"\x30\x03\x02\x01\x00"], [b"junk"]])
def test_decode_refuses_what_is_no_certificate(chain_ders: list[bytes]) -> None:
    with pytest.raises(ValueError, match="certificate"):
        decode_chain(chain_ders)


def test_decode_a_truncated_certificate() -> None:
    der = issue(name("cut"), None, ca=False, days=1).der
    for cut in (1, len(der) // 2, len(der) - 1):
        with pytest.raises(ValueError):
            decode_chain([der[:cut]])


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_decode_random_bytes_raises_value_error_only(data: bytes) -> None:
    try:
        cert = decode_chain([data])
    except ValueError as e:
        assert "certificate" in str(e)
        return
    assert cert.sha256 == hashlib.sha256(data).hexdigest()  # pragma: no cover (never valid)


def _cert(**changes: object) -> Cert:
    base = {
        "subject": "CN=a",
        "issuer": "CN=ca",
        "sans": ["DNS:a", "IP:10.0.0.1"],
        "not_before": "2026-01-01T00:00:00Z",
        "not_after": "2026-04-01T00:00:00Z",
        "sha256": "ab" * 32,
        "chain": [{"sha256": "ab" * 32}, {"sha256": "cd" * 32}],
    }
    base.update(changes)
    return Cert(**base)  # type: ignore[arg-type]


def test_expiring() -> None:
    cert = _cert()
    end = parse_time(cert.not_after)
    assert expiring(cert, end - timedelta(days=30), 30)  # exactly at the edge
    assert not expiring(cert, end - timedelta(days=30, seconds=1), 30)
    assert expiring(cert, end + timedelta(days=1), 0)  # already expired
    assert not expiring(cert, end - timedelta(seconds=1), 0)
    assert expiring(cert, (end - timedelta(days=5)).replace(tzinfo=None), 7)  # naive is UTC
    with pytest.raises(ValueError, match="not_after"):
        expiring(_cert(not_after="soon"), end, 1)


def test_expiring_on_made_certificates() -> None:
    soon = decode_chain([chain("soon", (), days=5).leaf.der])
    later = decode_chain([chain("later", (), days=200).leaf.der])
    t = now()
    assert expiring(soon, t, 30) and not expiring(soon, t, 3)
    assert not expiring(later, t, 30) and expiring(later, t, 365)


def test_cert_changes() -> None:
    a = _cert()
    assert cert_changes(None, None) == []
    assert cert_changes(None, a) == ["added"]
    assert cert_changes(a, None) == ["removed"]
    assert cert_changes(a, _cert()) == []
    assert cert_changes(a, _cert(sha256="AB" * 32)) == []  # hex case is no change
    assert cert_changes(a, _cert(sans=["IP:10.0.0.1", "DNS:a"])) == []  # nor SAN order
    assert cert_changes(a, _cert(sha256="ef" * 32)) == ["fingerprint"]
    assert cert_changes(a, _cert(subject="CN=b")) == ["subject"]
    assert cert_changes(a, _cert(issuer="CN=other")) == ["issuer"]
    assert cert_changes(a, _cert(sans=["DNS:a"])) == ["sans"]
    assert cert_changes(a, _cert(not_before="2026-01-02T00:00:00Z")) == ["validity"]
    assert cert_changes(a, _cert(not_after="2027-01-01T00:00:00Z")) == ["validity"]
    assert cert_changes(a, _cert(chain=[{"sha256": "ab" * 32}])) == ["chain"]


def test_cert_changes_on_a_renewed_certificate() -> None:
    made = chain("web", ("web",), days=10)
    renewed = issue(made.leaf.cert.subject, made.intermediate, ca=False, days=90, sans=("web",))
    old = decode_chain([made.leaf.der, made.intermediate.der])
    new = decode_chain([renewed.der, made.intermediate.der])
    assert cert_changes(old, new) == ["fingerprint", "validity", "chain"]
    other = chain("web", ("web", "www"), days=90)  # another CA with the same names
    moved = decode_chain([other.leaf.der, other.intermediate.der])
    assert cert_changes(old, moved) == ["fingerprint", "sans", "validity", "chain"]


def test_times() -> None:
    t = now()
    assert parse_time(iso_utc(t)) == t
    assert iso_utc(t.replace(tzinfo=None)) == iso_utc(t)
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time("yesterday")


# -- the chain from a real handshake ---------------------------------------------------------


def _handshake(server: ssl.SSLContext, sni: str | None) -> ssl.SSLObject:
    """A TLS handshake between two SSLObjects over memory buffers; the client side."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context().wrap_bio(c_in, c_out, server_hostname=sni)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, obj, out, peer in (("client", client, c_out, s_in), ("server", srv, s_out, c_in)):
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            peer.write(out.read())
        if all(done.values()):
            return client
    raise AssertionError("the handshake did not finish")


def test_peer_chain_of_a_real_handshake(tmp_path: Path) -> None:
    made = chain("mem.facts.test", ("mem.facts.test",), days=30)
    cert, key = made.write(tmp_path, "mem")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = _handshake(server, "mem.facts.test")
    ders, whole = peer_chain(client)
    assert whole
    assert ders == [made.leaf.der, made.intermediate.der]  # the leaf first, as sent

    class LeafOnly:
        """An SSL object of a Python without get_unverified_chain."""

        def getpeercert(self, binary_form: bool) -> bytes | None:
            return client.getpeercert(binary_form=True)

    assert peer_chain(LeafOnly()) == ([made.leaf.der], False)


def test_client_context_accepts_anything() -> None:
    ctx = client_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
