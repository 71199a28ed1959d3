"""What a port and its first words say about an in-protocol upgrade to TLS, and whether each
reply of the upgrade says yes. Pure: bytes in, answers out (the conversations are in
:mod:`~stockade.sensors.scan.starttls`).

Protocols that greet (SMTP, IMAP, POP3, FTP) are recognised by the greeting: on their standard
ports (or ports a scan group lists for them) by the greeting's first word, elsewhere only by a
greeting no other protocol sends (``* OK``, ``+OK``, ``220 … SMTP``, ``220 … FTP``). Silent ones
(PostgreSQL, LDAP) are recognised by their port alone, and then by their answer to the upgrade
request (:func:`silent_answer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from stockade.sensors.scan import ldap_ber

SMTP, IMAP, POP3, FTP, POSTGRES, LDAP = "smtp", "imap", "pop3", "ftp", "postgres", "ldap"
GREETING_PROTOCOLS = (SMTP, IMAP, POP3, FTP)
SILENT_PROTOCOLS = (POSTGRES, LDAP)
PROTOCOLS = GREETING_PROTOCOLS + SILENT_PROTOCOLS
STANDARD_PORTS: dict[str, tuple[int, ...]] = {
    SMTP: (25, 587),
    IMAP: (143,),
    POP3: (110,),
    FTP: (21,),
    POSTGRES: (5432,),
    LDAP: (389,),
}
#: PostgreSQL's SSLRequest: length 8, code 80877103.
POSTGRES_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")

_FIRST_WORD = {SMTP: b"220", FTP: b"220", IMAP: b"* OK", POP3: b"+OK"}
_BY_TEXT = (
    (SMTP, re.compile(rb"^220[ -][^\r\n]*SMTP", re.IGNORECASE)),
    (FTP, re.compile(rb"^220[ -][^\r\n]*FTP", re.IGNORECASE)),
    (IMAP, re.compile(rb"^\* OK\b")),
    (POP3, re.compile(rb"^\+OK\b")),
)
_FINAL_REPLY = re.compile(rb"(?:^|\n)\d{3} [^\n]*\n")
_SMTP_STARTTLS = re.compile(rb"^250[ -]STARTTLS\s*$", re.IGNORECASE | re.MULTILINE)
_IMAP_CAPS = re.compile(rb"^\* (?:OK \[CAPABILITY ([^\]\n]*)\]|CAPABILITY ([^\n]*))", re.I | re.M)
_POP3_STLS = re.compile(rb"^STLS\s*$", re.IGNORECASE | re.MULTILINE)


def port_protocols(extra: Mapping[str, Iterable[int]] | None = None) -> dict[int, str]:
    """Port → protocol: the standard ports, then ``extra`` (protocol → ports), which wins."""
    table = {port: proto for proto, ports in STANDARD_PORTS.items() for port in ports}
    for proto, ports in (extra or {}).items():
        if proto not in STANDARD_PORTS:
            raise ValueError(f"{proto!r} is not one of {', '.join(PROTOCOLS)}")
        table.update(dict.fromkeys(ports, proto))
    return table


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def greeting_protocol(port: int, greeting: bytes, ports: Mapping[int, str]) -> str | None:
    """The protocol a service greeting ``greeting`` on ``port`` speaks, when it is one that may
    upgrade to TLS (None otherwise)."""
    hint = ports.get(port)
    if hint in _FIRST_WORD:
        return hint if greeting.startswith(_FIRST_WORD[hint]) else None
    for proto, pattern in _BY_TEXT:
        if pattern.match(greeting):
            return proto
    return None


def silent_protocol(port: int, ports: Mapping[int, str]) -> str | None:
    """The silent protocol (PostgreSQL, LDAP) expected on ``port``, if any."""
    proto = ports.get(port)
    return proto if proto in SILENT_PROTOCOLS else None


def silent_request(proto: str) -> bytes:
    """What is sent to a silent ``proto`` service in place of the generic probe."""
    return POSTGRES_SSL_REQUEST if proto == POSTGRES else ldap_ber.START_TLS_REQUEST


def silent_done(proto: str, answer: bytes) -> bool:
    """Whether the answer of a silent ``proto`` service has all come (or never will)."""
    return bool(answer) if proto == POSTGRES else ldap_ber.is_complete(answer)


def silent_answer(proto: str, answer: bytes) -> bool | None:
    """Whether the answer of a silent ``proto`` service to :func:`silent_request` lets the
    handshake start (True), refuses it in that protocol (False), or is not that protocol at
    all (None)."""
    if proto == POSTGRES:
        return {b"S": True, b"N": False}.get(answer)
    try:
        return ldap_ber.start_tls_result(answer) == ldap_ber.SUCCESS
    except ldap_ber.BerError:
        return None


def final_reply(data: bytes) -> bool:
    """Whether ``data`` holds a whole SMTP or FTP reply (its last line ``NNN text``)."""
    return bool(_FINAL_REPLY.search(_lf(data)))


def reply_code(data: bytes) -> bytes:
    """The three digits of an SMTP or FTP reply's last line (empty when there are none)."""
    lines = [ln for ln in _lf(data).split(b"\n") if ln]
    last = lines[-1] if lines else b""
    return last[:3] if last[:3].isdigit() and last[3:4] in (b" ", b"") else b""


def smtp_offers(ehlo_reply: bytes) -> bool:
    """Whether an SMTP EHLO reply lists the STARTTLS extension."""
    return bool(_SMTP_STARTTLS.search(_lf(ehlo_reply)))


def imap_capabilities(data: bytes) -> set[bytes] | None:
    """The capabilities listed in IMAP greeting or CAPABILITY reply lines, upper-cased (None
    when no line lists any)."""
    found: set[bytes] | None = None
    for m in _IMAP_CAPS.finditer(_lf(data)):
        found = (found or set()) | {c.upper() for c in (m[1] or m[2] or b"").split()}
    return found


def imap_tagged(tag: bytes, data: bytes) -> bytes | None:
    """The status (``OK``, ``NO``, ``BAD``) of the tagged reply ``tag`` in ``data``, or None
    while it has not come."""
    m = re.search(rb"(?:^|\n)" + re.escape(tag) + rb" (OK|NO|BAD)\b", _lf(data), re.IGNORECASE)
    return m[1].upper() if m else None


def pop3_done(data: bytes) -> bool:
    """Whether a POP3 CAPA reply is whole: ``-ERR …`` on one line, or ``+OK`` up to ``.``."""
    text = _lf(data)
    if text.startswith(b"-"):
        return b"\n" in text
    return text.startswith(b"+OK") and b"\n.\n" in text


def pop3_offers(capa_reply: bytes) -> bool:
    """Whether a POP3 CAPA reply lists STLS."""
    return capa_reply.startswith(b"+OK") and bool(_POP3_STLS.search(_lf(capa_reply)))


def line_done(data: bytes) -> bool:
    """Whether one line has come."""
    return b"\n" in data
