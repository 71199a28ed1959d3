"""Small asyncio servers for the upgrade tests, one per protocol, on loopback: a plaintext phase
as the real servers speak it, then ``start_tls`` with the test's certificate when the service
``offers`` the upgrade. Each records what the client sent (``heard``), so a test can check that
nothing but the upgrade's own commands was said. The answers are written here from the RFCs,
independently of the code under test."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# PostgreSQL's SSLRequest; LDAP's StartTLS request and two ExtendedResponses (RFC 4511)
SSL_REQUEST = bytes.fromhex("0000000804d2162f")
LDAP_START_TLS = bytes.fromhex("301d02010177188016312e332e362e312e342e312e313436362e3230303337")
LDAP_SUCCESS = bytes.fromhex("300c02010178070a010004000400")
LDAP_PROTOCOL_ERROR = bytes.fromhex("300c02010178070a010204000400")


@dataclass
class Service:
    kind: str  # a key of HANDLERS
    offers: bool
    ctx: ssl.SSLContext
    heard: list[bytes] = field(default_factory=list)
    port: int = 0


Handler = Callable[[Service, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _say(writer: asyncio.StreamWriter, text: bytes) -> None:
    writer.write(text)
    await writer.drain()


async def _lines(
    s: Service, reader: asyncio.StreamReader, answer: Callable[[bytes], Awaitable[None]]
) -> None:
    """Record every line the client sends and hand it to ``answer``, until the client goes."""
    while line := await reader.readline():
        s.heard.append(line.strip())
        await answer(line.strip())


async def _upgrade(s: Service, writer: asyncio.StreamWriter, ready: bytes) -> None:
    await _say(writer, ready)
    await writer.start_tls(s.ctx)


def _said(line: bytes, verb: bytes) -> bool:
    return line.upper() == verb or line.upper().startswith(verb + b" ")


async def _verbs(
    s: Service,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    greeting: bytes,
    replies: dict[bytes, bytes],
    upgrade: tuple[bytes, bytes],
    unknown: bytes,
) -> None:
    """A line protocol without tags: ``greeting``, then per verb its reply; the ``upgrade``
    verb (when the service offers it) gets its ready reply and starts TLS."""

    async def answer(line: bytes) -> None:
        if s.offers and _said(line, upgrade[0]):
            await _upgrade(s, writer, upgrade[1])
            return
        reply = next((r for verb, r in replies.items() if _said(line, verb)), unknown)
        await _say(writer, reply)

    await _say(writer, greeting)
    await _lines(s, reader, answer)


async def smtp(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    ext = b"250-SIZE 1000\r\n250 STARTTLS\r\n" if s.offers else b"250 SIZE 1000\r\n"
    replies = {b"EHLO": b"250-mail.facts.test\r\n" + ext, b"QUIT": b"221 2.0.0 Bye\r\n"}
    greeting = b"220 mail.facts.test ESMTP facts-test\r\n"
    ready = (b"STARTTLS", b"220 2.0.0 Ready to start TLS\r\n")
    await _verbs(s, reader, writer, greeting, replies, ready, b"502 5.5.2 Error\r\n")


async def imap(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    caps = b"IMAP4rev1 SASL-IR" + (b" STARTTLS LOGINDISABLED" if s.offers else b" AUTH=PLAIN")

    async def answer(line: bytes) -> None:
        (tag, _, command), w = line.partition(b" "), writer
        if command.upper() == b"CAPABILITY":
            await _say(w, b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n")
        elif command.upper() == b"STARTTLS" and s.kind == "imap-liar":  # yes, then plain text
            await _say(w, tag + b" OK Begin TLS negotiation now.\r\n* BYE not really\r\n")
            w.close()
        elif command.upper() == b"STARTTLS" and s.offers:
            await _upgrade(s, w, tag + b" OK Begin TLS negotiation now.\r\n")
        elif command.upper() == b"LOGOUT":
            await _say(w, b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n")
        else:
            await _say(w, tag + b" BAD Error in IMAP command\r\n")

    if s.kind == "imap-ask":  # no capabilities in the greeting: the client asks
        await _say(writer, b"* OK facts IMAP ready.\r\n")
    else:
        await _say(writer, b"* OK [CAPABILITY " + caps + b"] facts IMAP ready.\r\n")
    await _lines(s, reader, answer)


async def pop3(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    stls = b"STLS\r\n" if s.offers else b""
    capa = b"+OK Capability list follows\r\nTOP\r\n" + stls + b"UIDL\r\n.\r\n"
    replies = {b"CAPA": capa, b"QUIT": b"+OK Logging out.\r\n"}
    ready = (b"STLS", b"+OK Begin TLS negotiation\r\n")
    greeting = b"+OK facts POP3 ready.\r\n"
    await _verbs(s, reader, writer, greeting, replies, ready, b"-ERR Unknown command.\r\n")


async def ftp(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # longer than the banner reader's three lines: the client must read on to its end
    greeting = b"220-facts FTP\r\n220-line two\r\n220-line three\r\n220 ready\r\n"
    replies = {b"QUIT": b"221 Goodbye.\r\n"}
    ready = (b"AUTH TLS", b"234 AUTH TLS OK.\r\n")
    await _verbs(s, reader, writer, greeting, replies, ready, b"500 Unknown command.\r\n")


async def postgres(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    s.heard.append(await reader.read(4096))  # eight bytes, in one segment on loopback
    if s.heard[0] != SSL_REQUEST:
        return
    if s.offers:
        await _upgrade(s, writer, b"S")
    else:
        await _say(writer, b"N")
    s.heard.append(await reader.read(4096))  # a start-up message would come here: none does


async def ldap(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    s.heard.append(await reader.read(4096))
    if s.heard[0] != LDAP_START_TLS:
        return
    if s.offers:
        await _upgrade(s, writer, LDAP_SUCCESS)
    else:
        await _say(writer, LDAP_PROTOCOL_ERROR)
    s.heard.append(await reader.read(4096))


async def garbage(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers whatever comes with bytes that are no protocol's answer."""
    s.heard.append(await reader.read(4096))
    await _say(writer, b"\x30\x03garbage, not BER\r\n")
    await reader.read(4096)


async def silent(s: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, and never says a word."""
    while chunk := await reader.read(4096):
        s.heard.append(chunk)


HANDLERS: dict[str, Handler] = {
    "smtp": smtp,
    "imap": imap,
    "imap-ask": imap,
    "imap-liar": imap,
    "pop3": pop3,
    "ftp": ftp,
    "postgres": postgres,
    "ldap": ldap,
    "garbage": garbage,
    "silent": silent,
}


class Servers:
    """The services on 127.0.0.1, each on a port of its own, served by one event loop in a
    thread (the scan under test runs its own loop in the test's thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []

    def serve(self, service: Service) -> Service:
        handler = HANDLERS[service.kind]

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ssl.SSLError):
                await handler(service, reader, writer)
            writer.close()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(connected, "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        service.port = server.sockets[0].getsockname()[1]
        return service

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
