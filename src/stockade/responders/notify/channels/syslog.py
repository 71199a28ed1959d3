"""Syslog over UDP (RFC 5426), TCP (RFC 6587, octet counting) or TLS (RFC 5425; with
``tls_cert``/``tls_key`` the client certificate is presented: mutual TLS).

One connection a delivery: notifications are few (grouping sees to that), and a fresh
connection never writes into one the collector has half closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import time

from stockade.config.schema import SyslogChannel
from stockade.responders.notify.address import parse_host_port
from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.channels.tls import tls_context
from stockade.responders.notify.formats import frame, rfc5424, truncate
from stockade.responders.notify.message import Message

#: the datagram size RFC 5426 says receivers should accept
UDP_LIMIT = 2048
#: TLS 1.3: the least time given to a collector to refuse the client's certificate
REFUSAL_WAIT = 0.2


class SyslogSender:
    def __init__(self, cfg: SyslogChannel, host: str) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.host = host
        self.address = parse_host_port(cfg.address, 514)

    def payload(self, message: Message) -> bytes:
        return self._format(message).encode("utf-8")

    def datagram(self, message: Message) -> bytes:
        """A payload that fits a datagram: a summary gives up sample alerts first, so its JSON
        stays whole; what still does not fit is cut."""
        for n in (len(message.sample), 3, 1):
            data = self.payload(dataclasses.replace(message, sample=message.sample[:n]))
            if len(data) <= UDP_LIMIT:
                return data
        return truncate(data, UDP_LIMIT)

    def _format(self, message: Message) -> str:
        return rfc5424(
            message,
            body_format=self.cfg.format,
            facility=self.cfg.facility,
            app_name=self.cfg.app_name,
            procid=os.getpid(),
            now=time.time(),
        )

    async def send(self, message: Message) -> None:
        where = f"syslog {self.cfg.transport}://{self.cfg.address}"
        try:
            async with asyncio.timeout(self.cfg.timeout):
                if self.cfg.transport == "udp":
                    await self._udp(self.datagram(message))
                else:
                    await self._stream(frame(self.payload(message)))
        except TimeoutError:
            raise DeliveryError(f"{where}: no answer within {self.cfg.timeout:g} s") from None
        except OSError as e:  # ssl.SSLError is one
            raise DeliveryError(f"{where}: {e}") from None

    async def _udp(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.address
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            await loop.sock_connect(s, addr)
            await loop.sock_sendall(s, data)

    async def _stream(self, data: bytes) -> None:
        host, port = self.address
        ctx = None
        if self.cfg.transport == "tls":
            ctx = tls_context(self.cfg.ca_file, self.cfg.tls_cert, self.cfg.tls_key)
        server_name = (self.cfg.server_name or host) if ctx else None
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_name
        )
        handshake = time.monotonic() - started
        try:
            writer.write(data)
            await writer.drain()
            await _refusal(reader, writer, handshake)
        finally:
            writer.close()
            # the message was handed over; a rough close does not undo that
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _refusal(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handshake: float
) -> None:
    """Raise the collector's TLS alert if it refuses this client (its certificate, or the lack
    of one).

    In TLS 1.3 the client's handshake is over before the server has checked the client's
    certificate, and syslog has no acknowledgement: a refusal arrives as an alert one round
    trip later. That is waited for (twice the handshake's time, at least ``REFUSAL_WAIT``), so a
    refused message stays in the outbox instead of counting as sent. In TLS 1.2 a refusal
    fails the handshake itself.
    """
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None or ssl_object.version() != "TLSv1.3":
        return
    try:
        await asyncio.wait_for(reader.read(1), max(REFUSAL_WAIT, 2 * handshake))
    except TimeoutError:
        return
    except OSError as e:
        raise ConnectionError(
            f"refused after the TLS handshake (does it want a client certificate, tls_cert?): {e}"
        ) from None
