"""ICMP echo, as ping does it: a request every ``interval`` seconds, each reply with its
sequence number, TTL and round-trip time, and a summary (transmitted, received, loss,
min/avg/max/mdev of the RTTs).

A reply counts when it carries our identifier and our payload cookie and arrives within
``timeout`` seconds of its request; a second reply to the same request (a duplicate) and
replies to other programs' pings are not counted. After the last request, the wait for what
is still outstanding is ``timeout`` when nothing has answered yet, else twice the largest RTT
seen (at least 10 ms), as iputils ping waits. ``mdev`` is the population standard deviation
of the RTTs, as iputils computes it. ICMP errors about our requests (destination unreachable,
time exceeded) are reported as :class:`PingProblem` (only on raw sockets: datagram sockets
do not read them).
"""

from __future__ import annotations

import ipaddress
import math
import secrets
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from stockade.sensors.scan import icmp
from stockade.sensors.scan.connect import route_source
from stockade.sensors.scan.icmp_socket import IcmpSocket

_TEXT4 = {
    (3, 0): "Destination Net Unreachable",
    (3, 1): "Destination Host Unreachable",
    (3, 2): "Destination Protocol Unreachable",
    (3, 3): "Destination Port Unreachable",
    (3, 9): "Destination Net Prohibited",
    (3, 10): "Destination Host Prohibited",
    (3, 13): "Packet filtered",
    (11, 0): "Time to live exceeded",
}
_TEXT6 = {
    (1, 0): "Destination unreachable: No route",
    (1, 1): "Destination unreachable: Administratively prohibited",
    (1, 3): "Destination unreachable: Address unreachable",
    (1, 4): "Destination unreachable: Port unreachable",
    (3, 0): "Time exceeded: Hop limit",
}


@dataclass(frozen=True, slots=True)
class PingReply:
    seq: int  # from 1, as ping numbers them
    ttl: int | None
    rtt: float  # seconds
    source: str
    size: int  # bytes of ICMP message


@dataclass(frozen=True, slots=True)
class PingProblem:
    seq: int
    source: str  # who complained ('' when a send failed here)
    text: str  # as ping words it: "Destination Host Unreachable", "Time to live exceeded", …


@dataclass
class PingSummary:
    transmitted: int = 0
    received: int = 0
    duplicates: int = 0
    errors: int = 0
    elapsed: float = 0.0  # seconds from the first request to the last, as ping's "time"
    rtts: list[float] = field(default_factory=list)

    @property
    def loss(self) -> float:
        """Per cent of requests without a reply."""
        if not self.transmitted:
            return 0.0
        return (self.transmitted - self.received) * 100.0 / self.transmitted

    @property
    def stats(self) -> tuple[float, float, float, float] | None:
        """(min, avg, max, mdev) of the RTTs in seconds; None without replies."""
        if not self.rtts:
            return None
        n = len(self.rtts)
        avg = sum(self.rtts) / n
        var = sum(r * r for r in self.rtts) / n - avg * avg
        return min(self.rtts), avg, max(self.rtts), math.sqrt(max(0.0, var))


def problem_text(error: icmp.IcmpError, v6: bool) -> str:
    """How ping words an ICMP error."""
    known = (_TEXT6 if v6 else _TEXT4).get((error.type, error.code))
    return known or f"ICMP type {error.type} code {error.code}"


class Pinger:
    """Pings one address. Iterate :meth:`run` for replies and problems as they come; the
    :attr:`summary` is kept up to date (also when the iteration is interrupted)."""

    def __init__(
        self,
        address: str,
        *,
        interval: float = 1.0,
        timeout: float = 10.0,
        size: int = 56,
        privileged: bool | None = None,
    ) -> None:
        if interval < 0 or timeout <= 0 or not 8 <= size <= 65000:
            raise ValueError("interval >= 0, timeout > 0 and 8 <= size <= 65000")
        self.address = str(ipaddress.ip_address(address))
        self.v6 = ":" in address
        self.interval, self.timeout = interval, timeout
        cookie = secrets.token_bytes(8)
        self.payload = (cookie + bytes(range(8, 256)) * (size // 248 + 1))[:size]
        self.summary = PingSummary()
        route_source(address, "ping {address}: {reason}")
        self.sock = IcmpSocket(v6=self.v6, privileged=privileged)

    @property
    def mode(self) -> str:
        return "raw" if self.sock.raw else "datagram"

    def run(
        self, count: int | None = None, deadline: float | None = None
    ) -> Iterator[PingReply | PingProblem]:
        """Send ``count`` requests (None: until ``deadline`` seconds or for ever) and yield
        what answers them."""
        s = self.summary
        sent_at: dict[int, tuple[int, float]] = {}  # wire seq -> (seq, time sent)
        answered: set[int] = set()
        start = time.monotonic()
        next_send = start
        last_send = start
        while True:
            now = time.monotonic()
            if deadline is not None and now >= start + deadline:
                yield from self._receive(sent_at, answered)
                return
            if (count is None or s.transmitted < count) and now >= next_send:
                seq = s.transmitted + 1
                s.transmitted += 1
                last_send = now
                s.elapsed = now - start
                next_send += self.interval
                try:
                    sent_at[seq & 0xFFFF] = (seq, time.time())  # wall clock, as the stamps
                    self.sock.send(self.address, seq, self.payload)
                except OSError as e:
                    del sent_at[seq & 0xFFFF]
                    s.errors += 1
                    yield PingProblem(seq, "", f"sendmsg: {e.strerror}")
            until = next_send
            if count is not None and s.transmitted >= count:
                waiting = [w for w, (seq, _) in sent_at.items() if seq not in answered]
                if not waiting:
                    return
                linger = self.timeout
                if s.rtts:
                    linger = min(linger, max(0.01, 2 * max(s.rtts)))
                until = last_send + linger
                if now >= until:  # what is already here still counts (we may have slept)
                    yield from self._receive(sent_at, answered)
                    return
            if deadline is not None:
                until = min(until, start + deadline)
            ready, _, _ = select.select([self.sock], [], [], max(0.0, until - time.monotonic()))
            if ready:
                yield from self._receive(sent_at, answered)

    def _receive(
        self, sent_at: dict[int, tuple[int, float]], answered: set[int]
    ) -> Iterator[PingReply | PingProblem]:
        s = self.summary
        while True:
            try:
                message, now = self.sock.receive()
            except BlockingIOError:
                return
            if isinstance(message, icmp.Echo):
                if not message.reply or message.ident != self.sock.ident:
                    continue
                if message.payload[:8] != self.payload[:8] or message.seq not in sent_at:
                    continue  # another ping with our identifier, or a stale one
                seq, t0 = sent_at[message.seq]
                if seq in answered:
                    s.duplicates += 1
                    continue
                rtt = now - t0
                if rtt > self.timeout:
                    continue  # too late: counted as lost
                answered.add(seq)
                s.received += 1
                s.rtts.append(rtt)
                yield PingReply(seq, message.ttl, rtt, message.source, message.size)
            elif isinstance(message, icmp.IcmpError):
                proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
                if (
                    message.orig_proto != proto
                    or message.orig_sport != self.sock.ident
                    or message.orig_dst != self.address
                    or message.orig_dport not in sent_at
                ):
                    continue
                seq, _ = sent_at[message.orig_dport]
                if seq in answered:
                    continue
                answered.add(seq)
                s.errors += 1
                yield PingProblem(seq, message.source, problem_text(message, self.v6))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Pinger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def ping(
    address: str,
    count: int,
    *,
    interval: float = 1.0,
    timeout: float = 10.0,
    privileged: bool | None = None,
) -> tuple[list[PingReply | PingProblem], PingSummary]:
    """Ping ``address`` ``count`` times; every reply and problem, and the summary."""
    with Pinger(address, interval=interval, timeout=timeout, privileged=privileged) as p:
        return list(p.run(count)), p.summary
