"""The line protocol between the scanner and its hashing workers (no I/O here).

Requests and results are one line each, fields separated by tabs; paths travel as hex because
file names may hold any byte but NUL and ``/``. A batch ends with an empty line, which the
worker echoes once the batch is done.

    request:  <path-hex> TAB <mask> LF
    result:   <path-hex> TAB <entry-json> TAB <note> TAB <message> TAB <bytes-hashed> LF
"""

from __future__ import annotations

from stockade.sensors.files.collect import Collected

END = b"\n"


class ProtocolError(ValueError):
    """A line that does not follow the protocol."""


def encode_request(path: bytes, mask: int) -> bytes:
    return path.hex().encode() + b"\t" + str(mask).encode() + b"\n"


def decode_request(line: bytes) -> tuple[bytes, int]:
    try:
        hexpath, mask = line.rstrip(b"\n").split(b"\t")
        return bytes.fromhex(hexpath.decode()), int(mask)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"malformed request line: {line[:80]!r}") from None


def _clean(text: str | None) -> bytes:
    return (text or "").replace("\t", " ").replace("\n", " ").encode("utf-8", "replace")


def encode_result(c: Collected) -> bytes:
    return (
        b"\t".join(
            (
                c.path.hex().encode(),
                _clean(c.entry),
                _clean(c.note),
                _clean(c.message),
                str(c.hashed).encode(),
            )
        )
        + b"\n"
    )


def decode_result(line: bytes) -> Collected:
    try:
        hexpath, entry, note, message, hashed = line.rstrip(b"\n").split(b"\t")
        return Collected(
            bytes.fromhex(hexpath.decode()),
            entry.decode() or None,
            note.decode() or None,
            message.decode() or None,
            int(hashed),
        )
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"malformed result line: {line[:80]!r}") from None
