"""Syslog over UDP (RFC 5426), TCP (RFC 6587, octet counting) or TLS (RFC 5425).

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
from stockade.responders.notify.channels.base import DeliveryError, tls_context
from stockade.responders.notify.formats import frame, rfc5424, truncate
from stockade.responders.notify.message import Message

#: the datagram size RFC 5426 says receivers should accept
UDP_LIMIT = 2048


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
        ctx = tls_context(self.cfg.ca_file) if self.cfg.transport == "tls" else None
        server_name = (self.cfg.server_name or host) if ctx else None
        _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_name)
        try:
            writer.write(data)
            await writer.drain()
        finally:
            writer.close()
            # the message was handed over; a rough close does not undo that
            with contextlib.suppress(OSError):
                await writer.wait_closed()
