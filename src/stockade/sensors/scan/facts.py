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

Then the service and its version (:mod:`~stockade.sensors.scan.versions`, from nmap's probe
database): what the conversation got is matched first (as the answer to nmap's NULL probe, or to
its GetRequest or GenericLines probe when the HTTP or empty-line probe went out); when that names
no version, the few likeliest harmless probes for the port are sent, each on its own
connection and all at once (so they cost one answer's wait, not one each); the likeliest probe
whose answer matches names the version. At most :data:`MORE_PROBES` (one when the port said
nothing at all).

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
from dataclasses import dataclass, field
from pathlib import Path

from stockade.sensors.scan.banner import (
    HTTP_PROBE,
    Conversation,
    Waits,
    converse,
    looks_like_tls,
    probe_for,
    read_some,
    sanitize,
)
from stockade.sensors.scan.certs import decode_chain
from stockade.sensors.scan.connect import Timing, raise_fd_limit
from stockade.sensors.scan.report import Cert, Service
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
from stockade.sensors.scan.versions import INTENSITY, PROBES_FILE, Matcher, load_probes

_LINGER0 = struct.pack("ii", 1, 0)
# what one port may raise; ValueError: a host name the TLS library cannot encode as SNI
_FAILED = (OSError, ssl.SSLError, TimeoutError, EOFError, ValueError)
MORE_PROBES = 3  # probes sent after the banner's conversation to tell a version


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
    service: Service | None = None
    answered: bool = False  # the service said something (a greeting, an answer)
    probes_done: set[str] = field(default_factory=set)  # nmap probes whose answer was matched


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
    versions: bool = True,
    intensity: int = INTENSITY,
    probes_file: Path = PROBES_FILE,
) -> dict[int, PortFacts]:
    """Banners and certificates of ``ports`` (open TCP ports of ``address``); ``name`` is the
    host name the target was given by (the SNI); ``starttls_ports`` (protocol → ports) adds
    ports where a protocol's upgrade is tried as on its standard ports; ``versions`` adds the
    service and version from ``probes_file`` (left out when the file is missing), sending
    further probes of rarity up to ``intensity`` (0: the banner is matched, nothing more is
    sent). Runs its own event loop: call it from a thread, not from a coroutine."""
    todo = sorted(set(ports))
    if not todo:
        return {}
    tm = timing or Timing()
    waits = Waits.for_rtt(tm.srtt, tm.timeout)
    protocols = port_protocols(starttls_ports)
    matcher = load_probes(probes_file) if versions else None
    grabber = _Grabber(
        address, name, frozenset(tls_ports), protocols, waits, raise_fd_limit(concurrency), rate
    )
    grabber.matcher = matcher
    grabber.intensity = intensity
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
        self.matcher: Matcher | None = None
        self.intensity = INTENSITY

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
            facts = await self._facts(port)
            if self.matcher is not None:
                await self._versions(facts, self.matcher)
            return facts

    async def _facts(self, port: int) -> PortFacts:
        if port in self.tls_ports:
            facts = await self._tls(port)
            return facts if facts.tls else (await self._plain(port))[0]
        plain, wants_tls = await self._plain(port)
        if not wants_tls:
            return plain
        facts = await self._tls(port)
        return facts if facts.tls else plain

    def _identify(self, facts: PortFacts, conv: Conversation, probe: bytes) -> None:
        """Match what the banner's conversation got, as the answer to the nmap probe that is
        most like the one sent."""
        if self.matcher is None:
            return
        name = "NULL"
        if conv.probed:
            name = "GetRequest" if probe == HTTP_PROBE else "GenericLines"
        facts.answered = facts.answered or bool(conv.data)
        facts.probes_done.add(name)
        facts.service = self.matcher.identify(conv.data, name) or facts.service

    async def _versions(self, facts: PortFacts, matcher: Matcher) -> None:
        """Send the likeliest harmless probes at once; the likeliest whose answer matches wins."""
        if facts.service is not None and not facts.service.soft:
            return
        soft = facts.service.name if facts.service else ""
        direct_tls = facts.tls and (facts.cert is None or not facts.cert.tls_via)
        probes = matcher.next_probes(
            facts.port,
            tls=direct_tls,
            soft=soft,
            done=frozenset(facts.probes_done),
            limit=MORE_PROBES if facts.answered else 1,
            intensity=self.intensity,
        )
        asks = (self._ask(facts.port, direct_tls, p.payload, p.totalwaitms) for p in probes)
        answers = await asyncio.gather(*asks)
        for probe, answer in zip(probes, answers, strict=True):  # the likeliest probe first
            found = matcher.identify(answer, probe.name, soft)
            if found is not None and not found.soft:
                facts.service = found
                return
            if found is not None and facts.service is None:
                facts.service = found

    async def _ask(self, port: int, tls: bool, payload: bytes, waitms: int) -> bytes:
        """Send one probe on a new connection and read the answer (empty when the connection
        failed: the version stays unknown, the banner and certificate stand)."""
        wait = min(self.waits.answer, waitms / 1000) if waitms else self.waits.answer
        conv = Conversation()
        try:
            async with asyncio.timeout(self.per_conn):
                reader, writer = await self._open(port, tls)
                try:
                    writer.write(payload)
                    await writer.drain()
                    await read_some(reader, wait, conv, settle=self.waits.settle)
                finally:
                    _abort(writer)
        except _FAILED:
            pass
        return conv.data

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
                    self._identify(facts, conv, probe_for(port))
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
                    if not silent:  # an upgrade request's answer is that protocol's, no banner
                        self._identify(facts, conv, probe)
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
