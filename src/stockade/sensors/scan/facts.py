"""Service facts of one host's open TCP ports — banner and TLS certificate — many ports at once.

One asyncio loop runs a conversation per port, at most ``concurrency`` at a time (and at most
``rate`` new connections a second when set), each within its own time-out, the waits scaled to
the host's round-trip time (:class:`~stockade.sensors.scan.connect.Timing`). Per port:

- on a TLS port (``tls_ports``) a TLS handshake first: the chain is decoded
  (:mod:`~stockade.sensors.scan.certs`) and the banner read over TLS; when the handshake fails
  the port is treated as plain;
- on any other port the plain banner (:mod:`~stockade.sensors.scan.banner`); when what came
  back looks like TLS (a TLS record, an "HTTP request to an HTTPS port" error, or a silent
  hang-up after the probe) a TLS handshake follows on a new connection; an SMTP greeting gets
  STARTTLS when offered (:mod:`~stockade.sensors.scan.tls`).

Connections are closed with a reset (SO_LINGER 0), as the connect scan does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from stockade.sensors.scan.banner import Waits, converse, looks_like_tls, probe_for, sanitize
from stockade.sensors.scan.certs import decode_chain
from stockade.sensors.scan.connect import Timing, raise_fd_limit
from stockade.sensors.scan.report import Cert
from stockade.sensors.scan.tls import TLS_PORTS, client_context, is_smtp, peer_chain, smtp_starttls

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
    timing: Timing | None = None,
    concurrency: int = 256,
    rate: int = 0,
) -> dict[int, PortFacts]:
    """Banners and certificates of ``ports`` (open TCP ports of ``address``); ``name`` is the
    host name the target was given by (the SNI). Runs its own event loop: call it from a
    thread, not from a coroutine."""
    todo = sorted(set(ports))
    if not todo:
        return {}
    tm = timing or Timing()
    waits = Waits.for_rtt(tm.srtt, tm.timeout)
    grabber = _Grabber(
        address, name, frozenset(tls_ports), waits, raise_fd_limit(concurrency), rate
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
        waits: Waits,
        concurrency: int,
        rate: int,
    ) -> None:
        self.address, self.name, self.tls_ports, self.waits = address, name, tls_ports, waits
        self.concurrency, self.rate = concurrency, rate
        self.ctx = client_context()
        # one conversation, STARTTLS included: connect, greeting, probe, three SMTP replies
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
        """The plain banner (and a STARTTLS certificate), and whether the answer says the
        port speaks TLS."""
        facts = PortFacts(port)
        wants_tls = False
        try:
            async with asyncio.timeout(self.per_conn):
                reader, writer = await self._open(port, tls=False)
                try:
                    conv = await converse(reader, writer, probe_for(port), self.waits)
                    facts.banner = sanitize(conv.data) or None
                    if conv.reset and not conv.data:
                        facts.error = "reset by the service"
                    silent_hangup = conv.probed and conv.closed and not conv.data
                    wants_tls = looks_like_tls(conv.data) or silent_hangup
                    if not conv.probed and not conv.closed and is_smtp(port, conv.data):
                        await self._starttls(facts, reader, writer)
                finally:
                    _abort(writer)
        except _FAILED as e:
            facts.error = facts.error or _why(e)
        return facts, wants_tls

    async def _starttls(
        self, facts: PortFacts, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            got = await smtp_starttls(reader, writer, self.ctx, self.name, self.waits)
        except _FAILED as e:
            facts.error = f"STARTTLS: {_why(e)}"
            return
        if got is not None:
            facts.tls = True
            chain, facts.full_chain = got
            self._decode(facts, chain)
