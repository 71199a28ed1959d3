"""The few BER bytes of LDAP's StartTLS (RFC 4511 §4.14): the request, and a strict reader of
the server's answer.

:data:`START_TLS_REQUEST` is the ExtendedRequest (message 1, request name
``1.3.6.1.4.1.1466.20037``) and :data:`UNBIND_REQUEST` the UnbindRequest (message 2) sent over TLS
before hanging up; both are built here from their parts. :func:`start_tls_result` reads the
ExtendedResponse to message 1 and returns its resultCode (0: go ahead with the handshake). Only
definite lengths are accepted (LDAP forbids the others); anything else — truncated, trailing
bytes, another message, another operation — raises :class:`BerError` (a ``ValueError``). Pure:
bytes in, a number or an exception out.
"""

from __future__ import annotations

START_TLS_OID = b"1.3.6.1.4.1.1466.20037"
SEQUENCE, INTEGER, ENUMERATED = 0x30, 0x02, 0x0A
EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x77, 0x78  # [APPLICATION 23] / [APPLICATION 24]
UNBIND = 0x42  # [APPLICATION 2], primitive, empty
REQUEST_NAME = 0x80  # [0]
SUCCESS = 0
_MAX_LENGTH_BYTES = 4


class BerError(ValueError):
    """The bytes are not the LDAP answer expected."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One BER element: ``tag``, the definite length of ``content``, ``content``."""
    return bytes([tag]) + _length(len(content)) + content


def message(message_id: int, op: bytes) -> bytes:
    """An LDAPMessage: SEQUENCE { messageID, protocolOp } (no controls)."""
    return tlv(SEQUENCE, tlv(INTEGER, bytes([message_id])) + op)


START_TLS_REQUEST = message(1, tlv(EXTENDED_REQUEST, tlv(REQUEST_NAME, START_TLS_OID)))
UNBIND_REQUEST = message(2, tlv(UNBIND, b""))


def element(data: bytes, pos: int = 0) -> tuple[int, int, int]:
    """The element starting at ``pos``: its tag, where its content starts and where it ends.
    Raises :class:`BerError` when it is cut short, has an indefinite or oversized length, or
    a multi-byte tag (none occurs in LDAP)."""
    if pos + 2 > len(data):
        raise BerError("cut short before a tag and length")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise BerError(f"multi-byte tag at byte {pos}")
    start = pos + 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0:
            raise BerError(f"indefinite length at byte {pos}")
        if count > _MAX_LENGTH_BYTES or start + count > len(data):
            raise BerError(f"bad length at byte {pos}")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + size
    if end > len(data):
        raise BerError(f"element at byte {pos} is cut short")
    return tag, start, end


def is_complete(data: bytes) -> bool:
    """Whether ``data`` holds at least one whole top-level element (more reading is useless)."""
    try:
        element(data)
    except BerError as e:
        return "cut short" not in str(e)  # malformed: reading on will not mend it
    return True


def _integer(data: bytes, start: int, end: int) -> int:
    if not 0 < end - start <= 4:
        raise BerError("an integer of 1 to 4 bytes expected")
    return int.from_bytes(data[start:end], "big", signed=True)


def start_tls_result(data: bytes) -> int:
    """The resultCode of the ExtendedResponse to message 1 that makes up all of ``data``."""
    tag, start, end = element(data)
    if tag != SEQUENCE or end != len(data):
        raise BerError("not one LDAPMessage")
    tag, id_start, id_end = element(data, start)
    if tag != INTEGER or _integer(data, id_start, id_end) != 1:
        raise BerError("not the answer to message 1")
    tag, op_start, op_end = element(data, id_end)
    if tag != EXTENDED_RESPONSE:
        raise BerError(f"operation 0x{tag:02x} instead of an ExtendedResponse")
    if op_end > end:
        raise BerError("the operation overruns the message")
    tag, code_start, code_end = element(data, op_start)
    if tag != ENUMERATED or code_end > op_end:
        raise BerError("no resultCode")
    return _integer(data, code_start, code_end)
