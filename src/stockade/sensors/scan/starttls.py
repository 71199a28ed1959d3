"""In-protocol upgrades to TLS, to read the certificate a mail, file, directory or database
server shows only after its STARTTLS (the replies are judged by
:mod:`~stockade.sensors.scan.starttls_protocols`).

After a greeting (the service spoke first):

- SMTP: ``EHLO``, ``STARTTLS`` when listed, the handshake, ``QUIT`` over TLS;
- IMAP: the greeting's ``[CAPABILITY …]`` (or ``a1 CAPABILITY``) lists STARTTLS: ``a2 STARTTLS``,
  the handshake, ``a3 LOGOUT`` over TLS;
- POP3: ``CAPA`` lists STLS: ``STLS``, the handshake, ``QUIT``;
- FTP: ``AUTH TLS`` answered ``234``: the handshake, ``QUIT``.

After the upgrade request sent in place of the probe to a silent service
(:func:`~stockade.sensors.scan.starttls_protocols.silent_request`):

- PostgreSQL: ``S`` to the SSLRequest: the handshake, then hang up (no start-up message);
- LDAP: resultCode 0 to the StartTLS extended request: the handshake, an UnbindRequest.

No credentials are ever sent and nothing is started on the server (no mail, no login, no
query). Every reply is awaited at most ``Waits.answer`` seconds, the handshake
``Waits.connect``; a refusal or a reply that does not come gives no certificate and no error.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stockade.sensors.scan import ldap_ber
from stockade.sensors.scan import starttls_protocols as sp
from stockade.sensors.scan.banner import Waits
from stockade.sensors.scan.tls import peer_chain

Chain = tuple[list[bytes], bool]  # as peer_chain: the DER certificates, whether all of them
REPLY_LIMIT = 16384  # bytes of one reply (a long capability list fits many times)


@dataclass
class Session:
    """One plain connection about to be upgraded."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ctx: ssl.SSLContext
    server_hostname: str
    waits: Waits

    async def say(self, line: bytes) -> None:
        self.writer.write(line)
        await self.writer.drain()

    async def read(self, done: Callable[[bytes], bool], buf: bytes = b"") -> bytes:
        """Read on after ``buf`` until ``done`` says the reply is whole, the peer hangs up,
        :data:`REPLY_LIMIT` bytes, or ``Waits.answer`` seconds; return what came."""
        try:
            async with asyncio.timeout(self.waits.answer):
                while not done(buf) and len(buf) < REPLY_LIMIT:
                    chunk = await self.reader.read(4096)
                    if not chunk:
                        break
                    buf += chunk
        except TimeoutError:
            pass
        return buf

    async def ask(self, line: bytes, done: Callable[[bytes], bool]) -> bytes:
        await self.say(line)
        return await self.read(done)

    async def handshake(self, bye: bytes) -> Chain:
        """TLS over the connection; the chain; ``bye`` (if any) sent over TLS."""
        await self.writer.start_tls(
            self.ctx,
            server_hostname=self.server_hostname or None,
            ssl_handshake_timeout=self.waits.connect,
        )
        chain = peer_chain(self.writer.get_extra_info("ssl_object"))
        if bye:
            await self.say(bye)
        return chain


async def _smtp(s: Session, greeting: bytes) -> Chain | None:
    await s.read(sp.final_reply, greeting)  # the rest of a greeting of many lines
    if not sp.smtp_offers(await s.ask(b"EHLO stockade.invalid\r\n", sp.final_reply)):
        await s.say(b"QUIT\r\n")
        return None
    if sp.reply_code(await s.ask(b"STARTTLS\r\n", sp.final_reply)) != b"220":
        return None
    return await s.handshake(b"QUIT\r\n")


async def _imap(s: Session, greeting: bytes) -> Chain | None:
    caps = sp.imap_capabilities(greeting)
    if caps is None:
        caps = sp.imap_capabilities(
            await s.ask(b"a1 CAPABILITY\r\n", lambda b: sp.imap_tagged(b"a1", b) is not None)
        )
    if b"STARTTLS" not in (caps or set()):
        await s.say(b"a3 LOGOUT\r\n")
        return None
    reply = await s.ask(b"a2 STARTTLS\r\n", lambda b: sp.imap_tagged(b"a2", b) is not None)
    if sp.imap_tagged(b"a2", reply) != b"OK":
        return None
    return await s.handshake(b"a3 LOGOUT\r\n")


async def _pop3(s: Session, greeting: bytes) -> Chain | None:
    if not sp.pop3_offers(await s.ask(b"CAPA\r\n", sp.pop3_done)):
        await s.say(b"QUIT\r\n")
        return None
    if not (await s.ask(b"STLS\r\n", sp.line_done)).startswith(b"+OK"):
        return None
    return await s.handshake(b"QUIT\r\n")


async def _ftp(s: Session, greeting: bytes) -> Chain | None:
    await s.read(sp.final_reply, greeting)
    if sp.reply_code(await s.ask(b"AUTH TLS\r\n", sp.final_reply)) != b"234":
        await s.say(b"QUIT\r\n")
        return None
    return await s.handshake(b"QUIT\r\n")


_AFTER_GREETING: dict[str, Callable[[Session, bytes], Awaitable[Chain | None]]] = {
    sp.SMTP: _smtp,
    sp.IMAP: _imap,
    sp.POP3: _pop3,
    sp.FTP: _ftp,
}


async def after_greeting(proto: str, s: Session, greeting: bytes) -> Chain | None:
    """The upgrade of a ``proto`` service (SMTP, IMAP, POP3, FTP) that greeted with
    ``greeting``: the chain, or None when the server does not offer or refuses it."""
    return await _AFTER_GREETING[proto](s, greeting)


async def after_request(proto: str, s: Session) -> Chain:
    """The handshake of a silent ``proto`` service that accepted the upgrade request."""
    return await s.handshake(ldap_ber.UNBIND_REQUEST if proto == sp.LDAP else b"")
