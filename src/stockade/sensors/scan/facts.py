"""Service facts of one host's open TCP ports — banner and TLS certificate — many ports at once.

One asyncio loop runs a conversation per port, at most ``concurrency`` at a time (and at most
``rate`` new connections a second when set), each within its own time-out, the waits scaled to
the host's round-trip time (:class:`~stockade.sensors.scan.connect.Timing`). Per port:

- on a TLS port (``tls_ports``) a TLS handshake first: the chain is decoded
  (:mod:`~stockade.sensors.scan.certs`) and the banner read over TLS; when the handshake fails
  the port is treated as plain;
- on any other port the plain banner (:mod:`~stockade.sensors.scan.banner`); when what came
  back looks like TLS (a TLS record, an "HTTP request to an HTTPS port" error, or a silent
  hang-up after the probe) a TLS handshake follows on a new connection; an SMTP, IMAP, POP3
  or FTP greeting gets that protocol's STARTTLS when offered, and a silent PostgreSQL or LDAP
  port (by its number) gets that protocol's upgrade request in place of the probe
  (:mod:`~stockade.sensors.scan.starttls`); the certificate then records the protocol
  (``Cert.tls_via``).

Connections are closed with a reset (SO_LINGER 0), as the connect scan does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass

from stockade.sensors.scan.banner import (
    Conversation,
    Waits,
    converse,
    looks_like_tls,
    probe_for,
    sanitize,
)
from stockade.sensors.scan.certs import decode_chain
from stockade.sensors.scan.connect import Timing, raise_fd_limit
from stockade.sensors.scan.report import Cert
from stockade.sensors.scan.starttls import Chain, Session, after_greeting, after_request
from stockade.sensors.scan.starttls_protocols import (
    greeting_protocol,
    port_protocols,
    silent_answer,
    silent_done,
    silent_protocol,
    silent_request,
)
from stockade.sensors.scan.tls import TLS_PORTS, client_context, peer_chain

_LINGER0 = struct.pack("ii", 1, 0)
# what one port may raise; ValueError: a host name the TLS library cannot encode as SNI
_FAILED = (OSError, ssl.SSLError, TimeoutError, EOFError, ValueError)


@dataclass
class PortFacts:
    """What one port told: its banner, its certificate (with whether the whole chain was
    readable), and why something is missing (``error``: empty when nothing went wrong)."""

    port: int
    banner: str | None = None
    cert: Cert | None = None
    tls: bool = False
    full_chain: bool = True
    error: str = ""


def service_facts(
    address: str,
    ports: Iterable[int],
    *,
    name: str = "",
    tls_ports: Iterable[int] = TLS_PORTS,
    starttls_ports: Mapping[str, Iterable[int]] | None = None,
    timing: Timing | None = None,
    concurrency: int = 256,
    rate: int = 0,
) -> dict[int, PortFacts]:
    """Banners and certificates of ``ports`` (open TCP ports of ``address``); ``name`` is the
    host name the target was given by (the SNI); ``starttls_ports`` (protocol → ports) adds
    ports where a protocol's upgrade is tried as on its standard ports. Runs its own event
    loop: call it from a thread, not from a coroutine."""
    todo = sorted(set(ports))
    if not todo:
        return {}
    tm = timing or Timing()
    waits = Waits.for_rtt(tm.srtt, tm.timeout)
    protocols = port_protocols(starttls_ports)
    grabber = _Grabber(
        address, name, frozenset(tls_ports), protocols, waits, raise_fd_limit(concurrency), rate
    )
    return asyncio.run(grabber.run(todo))


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
    writer.transport.abort()


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    return getattr(e, "strerror", None) or type(e).__name__


class _Grabber:
    def __init__(
        self,
        address: str,
        name: str,
        tls_ports: frozenset[int],
        protocols: dict[int, str],
        waits: Waits,
        concurrency: int,
        rate: int,
    ) -> None:
        self.address, self.name, self.tls_ports, self.waits = address, name, tls_ports, waits
        self.protocols = protocols  # port → protocol whose upgrade to TLS is tried there
        self.concurrency, self.rate = concurrency, rate
        self.ctx = client_context()
        # one conversation, STARTTLS included: connect, greeting, probe, three replies
        self.per_conn = 2 * waits.connect + waits.greet + 4 * waits.answer + 1
        self.next_start = 0.0

    async def run(self, ports: list[int]) -> dict[int, PortFacts]:
        self.sem = asyncio.Semaphore(self.concurrency)
        self.pace = asyncio.Lock()
        found = await asyncio.gather(*(self.port(p) for p in ports))
        return {f.port: f for f in found}

    async def _paced(self) -> None:
        if not self.rate:
            return
        async with self.pace:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + 1 / self.rate
        await asyncio.sleep(start - now)

    async def _open(
        self, port: int, tls: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self._paced()
        async with asyncio.timeout(self.waits.connect * (2 if tls else 1)):
            if not tls:
                return await asyncio.open_connection(self.address, port)
            return await asyncio.open_connection(
                self.address,
                port,
                ssl=self.ctx,
                server_hostname=self.name,
                ssl_handshake_timeout=self.waits.connect,
            )

    async def port(self, port: int) -> PortFacts:
        async with self.sem:
            if port in self.tls_ports:
                facts = await self._tls(port)
                return facts if facts.tls else (await self._plain(port))[0]
            plain, wants_tls = await self._plain(port)
            if not wants_tls:
                return plain
            facts = await self._tls(port)
            return facts if facts.tls else plain

    async def _tls(self, port: int) -> PortFacts:
        """Handshake, chain, banner over TLS; ``tls`` False when the handshake failed."""
        facts = PortFacts(port)
        try:
            async with asyncio.timeout(self.per_conn):
                reader, writer = await self._open(port, tls=True)
                facts.tls = True
                try:
                    chain, facts.full_chain = peer_chain(writer.get_extra_info("ssl_object"))
                    self._decode(facts, chain)
                    conv = await converse(reader, writer, probe_for(port), self.waits)
                    facts.banner = sanitize(conv.data) or None
                finally:
                    _abort(writer)
        except _FAILED as e:
            facts.error = facts.error or _why(e)
        return facts

    def _decode(self, facts: PortFacts, chain: list[bytes]) -> None:
        try:
            facts.cert = decode_chain(chain)
        except ValueError as e:
            facts.error = f"certificate: {e}"

    async def _plain(self, port: int) -> tuple[PortFacts, bool]:
        """The plain banner (and a certificate after an upgrade to TLS), and whether the answer
        says the port speaks TLS."""
        facts = PortFacts(port)
        wants_tls = False
        silent = silent_protocol(port, self.protocols)
        probe = silent_request(silent) if silent else probe_for(port)
        try:
            async with asyncio.timeout(self.per_conn):
                reader, writer = await self._open(port, tls=False)
                try:
                    conv = await converse(reader, writer, probe, self.waits)
                    facts.banner = sanitize(conv.data) or None
                    if conv.reset and not conv.data:
                        facts.error = "reset by the service"
                    silent_hangup = conv.probed and conv.closed and not conv.data
                    wants_tls = looks_like_tls(conv.data) or silent_hangup
                    if not conv.closed:
                        session = Session(reader, writer, self.ctx, self.name, self.waits)
                        await self._after(facts, conv, silent, session)
                finally:
                    _abort(writer)
        except _FAILED as e:
            facts.error = facts.error or _why(e)
        return facts, wants_tls

    async def _after(
        self, facts: PortFacts, conv: Conversation, silent: str | None, session: Session
    ) -> None:
        """The upgrade to TLS that a greeting, or a silent port's answer, calls for."""
        if not conv.probed:
            proto = greeting_protocol(facts.port, conv.data, self.protocols)
            if proto:
                await self._upgrade(facts, proto, after_greeting(proto, session, conv.data))
            return
        if silent is None:
            return
        answer = conv.data
        if answer:  # the rest of an answer cut short (nothing came: no more waiting)
            answer = await session.read(functools.partial(silent_done, silent), answer)
        verdict = silent_answer(silent, answer)
        if verdict is not None:  # that protocol's answer, not a banner
            facts.banner = None
        if verdict:
            await self._upgrade(facts, silent, after_request(silent, session))

    async def _upgrade(
        self, facts: PortFacts, proto: str, upgrade: Awaitable[Chain | None]
    ) -> None:
        try:
            got = await upgrade
        except _FAILED as e:
            facts.error = f"STARTTLS ({proto}): {_why(e)}"
            return
        if got is not None:
            facts.tls = True
            chain, facts.full_chain = got
            self._decode(facts, chain)
            if facts.cert is not None:
                facts.cert.tls_via = proto
