"""Banners: what a TCP service says when a client connects, kept short and printable.

:func:`converse` runs one conversation on an open stream (plain or TLS): it waits for the
service to speak first (SSH, SMTP, FTP, POP3, IMAP and MySQL greet on their own); when the
service stays silent it sends one harmless probe — ``HEAD / HTTP/1.0`` to ports where HTTP is
usual, else three empty lines — and reads the answer. Neither probe changes anything on a
server: HEAD is HTTP's read-only request, an empty line is at most an unknown command. Reading
stops at the end of the first lines (or of an HTTP header), at a kilobyte, or when the
service pauses.

:func:`sanitize` (pure) turns the bytes into the banner: the first lines (of an HTTP
response the status line and the ``Server`` header, which stay the same from one scan to the
next), joined by ``\\n``, with every byte outside printable ASCII escaped (``\\xNN``, ``\\t``,
``\\\\``) so that a banner can never carry terminal escapes or break a table; at most
``limit`` characters.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

#: Ports where HTTP is usual: a silent service there gets a HEAD request.
HTTP_PORTS = frozenset(
    (
        80, 81, 280, 443, 591, 593, 1080, 3000, 3128, 4443, 5000, 5601, 5800, 7001, 8000, 8008,
        8009, 8080, 8081, 8088, 8443, 8800, 8888, 9000, 9080, 9090, 9200, 9443, 10000,
    )
)  # fmt: skip
HTTP_PROBE = b"HEAD / HTTP/1.0\r\n\r\n"
#: Three empty lines: what line-based services ignore or answer with an error, and enough
#: bytes (five or more) for a TLS server to see that this is no handshake and hang up.
GENERIC_PROBE = b"\r\n\r\n\r\n"
LIMIT = 256  # characters of a banner
READ_LIMIT = 1024  # bytes read from a service
MAX_LINES = 3
_BREAK = re.compile(rb"\r\n|\n|\r")
_ESCAPES = {0x09: "\\t", 0x5C: "\\\\"}
_HTTPS_HINT = re.compile(rb"(?i)https (?:port|server)|plain http request")


def sanitize(data: bytes, limit: int = LIMIT, max_lines: int = MAX_LINES) -> str:
    """The :func:`first_lines` of ``data`` joined by ``\\n``, every other byte outside
    printable ASCII escaped; at most ``limit`` characters, never a cut escape. Binary data (a
    NUL byte, or under three quarters text) is not split into lines: it is escaped whole."""
    lines = first_lines(data, max_lines) if is_text(data[:limit]) else [data[:limit]]
    out: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        tokens = ["\n"] if i else []
        tokens += [_escape(b) for b in line]
        for tok in tokens:
            if size + len(tok) > limit:
                return "".join(out).rstrip("\n")
            out.append(tok)
            size += len(tok)
    return "".join(out)


def first_lines(data: bytes, max_lines: int = MAX_LINES) -> list[bytes]:
    """The first ``max_lines`` non-empty lines, up to the first empty line after text; of an
    HTTP response, the status line and the ``Server`` header only (the others, such as
    ``Date``, change from one request to the next)."""
    lines: list[bytes] = []
    for line in _BREAK.split(data):
        if not line:
            if lines:
                break
            continue
        lines.append(line)
    if lines and lines[0].startswith(b"HTTP/"):
        lines = lines[:1] + [h for h in lines[1:] if h[:7].lower() == b"server:"]
    return lines[:max_lines]


def is_text(data: bytes) -> bool:
    """No NUL byte, and at least three quarters printable ASCII or white space."""
    if b"\0" in data:
        return False
    texty = sum(1 for b in data if 0x20 <= b < 0x7F or b in (0x09, 0x0A, 0x0D))
    return texty * 4 >= len(data) * 3


def _escape(byte: int) -> str:
    if byte in _ESCAPES:
        return _ESCAPES[byte]
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return f"\\x{byte:02x}"


def looks_like_tls(data: bytes) -> bool:
    """Whether ``data`` starts with a TLS record (an alert or a handshake, TLS 1.0-1.3), or is
    a plain-HTTP error saying the port wants HTTPS: either way the port speaks TLS."""
    if len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 0x03 and data[2] <= 0x04:
        return True
    return bool(_HTTPS_HINT.search(data[: LIMIT * 2]))


def probe_for(port: int) -> bytes:
    """The probe for a silent service on ``port``."""
    return HTTP_PROBE if port in HTTP_PORTS else GENERIC_PROBE


def _enough(buf: bytes, max_lines: int) -> bool:
    """The first lines are in: an empty line after some text, or ``max_lines`` line ends (of
    an HTTP response, the whole header)."""
    text = buf.lstrip(b"\r\n")
    if b"\n\n" in text or b"\r\n\r\n" in text:
        return True
    return not text.startswith(b"HTTP/") and text.count(b"\n") >= max_lines


@dataclass(frozen=True)
class Waits:
    """How long one conversation waits, in seconds: for the connection (and TLS handshake),
    for a greeting, for the answer to the probe, and for more once something came."""

    connect: float = 3.0
    greet: float = 2.0
    answer: float = 3.0
    settle: float = 0.3

    @classmethod
    def for_rtt(cls, srtt: float | None, rto: float) -> Waits:
        """Waits for a host with smoothed round-trip time ``srtt`` (None: not measured) and
        retransmission time-out ``rto`` (``Timing.srtt``, ``Timing.timeout``), never below the
        defaults: a slow host gets longer, a fast one no shorter than a slow service needs."""
        if srtt is None:
            return cls()
        return cls(
            connect=min(10.0, max(cls.connect, 3 * rto)),
            greet=min(10.0, max(cls.greet, 4 * rto)),
            answer=min(15.0, max(cls.answer, 6 * rto)),
            settle=min(2.0, max(cls.settle, 3 * srtt)),
        )


@dataclass
class Conversation:
    """What one conversation got: the bytes read (greeting, else the answer to the probe),
    whether a probe was sent, and whether the service hung up (``closed``) or reset."""

    data: bytes = b""
    probed: bool = False
    closed: bool = False
    reset: bool = False


async def read_some(
    reader: asyncio.StreamReader,
    wait: float,
    conv: Conversation,
    *,
    settle: float = Waits.settle,
    limit: int = READ_LIMIT,
) -> bytes:
    """Read into ``conv.data`` for up to ``wait`` seconds, stopping at ``limit`` bytes, at the
    end of the first lines, on a pause of ``settle`` seconds after data, or when the peer
    hangs up. Returns what this call read."""
    got = b""
    deadline = time.monotonic() + wait
    last = 0.0
    while len(got) < limit and not conv.closed:
        now = time.monotonic()
        until = min(deadline, last + settle) if got else deadline
        if until <= now:
            break
        try:
            async with asyncio.timeout(until - now):
                chunk = await reader.read(limit - len(got))
        except TimeoutError:
            break
        except ConnectionError:
            conv.closed = conv.reset = True
            break
        if not chunk:
            conv.closed = True
            break
        got += chunk
        conv.data += chunk
        last = time.monotonic()
        if _enough(got, MAX_LINES):
            break
    return got


async def converse(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    probe: bytes,
    waits: Waits,
) -> Conversation:
    """Wait for a greeting; if none, send ``probe`` once and read the answer."""
    conv = Conversation()
    if await read_some(reader, waits.greet, conv, settle=waits.settle) or conv.closed:
        return conv
    conv.probed = True
    try:
        writer.write(probe)
        await writer.drain()
    except ConnectionError:
        conv.closed = conv.reset = True
        return conv
    await read_some(reader, waits.answer, conv, settle=waits.settle)
    return conv
