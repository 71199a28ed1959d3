"""TCP SYN scan of one host through a raw socket (root only), IPv4 and IPv6.

One SYN per port is sent from a source port this scan holds (a bound TCP socket keeps other
programs off it); a SYN-ACK means ``open`` (the kernel answers it with a reset, so no
connection is ever made), a reset ``closed``, silence after every try ``filtered``. Replies are
matched on the target address, our port and the acknowledgement of a per-scan secret sequence
number, so stray or forged packets are not taken for answers. Sending is done in batches with
the receive queue drained in between; the ports that did not answer are sent again after the
adaptive time-out (:class:`~stockade.sensors.scan.connect.Timing`), ``retries`` times.

Packet building and parsing are pure functions (tested on their own); the scan loop is the I/O.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import struct
import time
from collections.abc import Iterable

from stockade.errors import StockadeError
from stockade.sensors.scan.connect import CLOSED, FILTERED, OPEN, ScanResult, Timing, route_source
from stockade.sensors.scan.inet import fold, ipv4_payload, ones_sum, pseudo_header4
from stockade.sensors.scan.tcp_probe import ACK, RST, SYN

_MSS = b"\x02\x04\x05\xb4"  # MSS 1460, as a real stack's SYN carries
_IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
_SO_RCVBUFFORCE = 33  # Linux; not exported by the socket module


class SynBuilder:
    """Builds SYN segments to one target from one source port, checksum included (for IPv6
    the kernel fills it in: IPV6_CHECKSUM)."""

    def __init__(self, src: str, dst: str, sport: int, seq: int) -> None:
        self.sport, self.seq = sport, seq
        self.v6 = ":" in dst
        self._base_sum = 0  # of everything but the destination port, which syn() adds
        if not self.v6:
            pseudo = pseudo_header4(src, dst, socket.IPPROTO_TCP, 20 + len(_MSS))
            self._base_sum = ones_sum(pseudo + self._segment(0, 0))

    def _segment(self, dport: int, checksum: int) -> bytes:
        return (
            struct.pack(
                "!HHIIBBHHH", self.sport, dport, self.seq, 0, 6 << 4, SYN, 1024, checksum, 0
            )
            + _MSS
        )

    def syn(self, dport: int) -> bytes:
        if self.v6:
            return self._segment(dport, 0)
        return self._segment(dport, ~fold(self._base_sum + dport) & 0xFFFF)


def parse_reply(
    packet: bytes, *, with_ip: bool, sport: int, seq: int
) -> tuple[bytes, int, str] | None:
    """(source address bytes or b'', target port, open|closed) when ``packet`` answers our SYN;
    None for anything else (other traffic, short or malformed packets)."""
    src = b""
    if with_ip:
        got = ipv4_payload(packet, socket.IPPROTO_TCP)
        if got is None:
            return None
        src, packet = got
    if len(packet) < 20:
        return None
    port, dport, _seq, ack, _off, flags = struct.unpack("!HHIIBB", packet[:14])
    if dport != sport or ack != (seq + 1) & 0xFFFFFFFF:
        return None
    if flags & (SYN | ACK) == SYN | ACK:
        return src, port, OPEN
    if flags & RST:
        return src, port, CLOSED
    return None


def syn_scan(
    address: str,
    ports: Iterable[int],
    *,
    retries: int = 2,
    timing: Timing | None = None,
    rate: int = 0,
    batch: int = 256,
    lossy_retries: int = 6,
) -> ScanResult:
    """Scan ``ports`` of ``address`` with SYNs; ``rate`` > 0 caps packets per second. Once a
    port has answered only to a repeated SYN, silent ports get up to ``lossy_retries`` tries
    after the first."""
    if os.geteuid() != 0:
        raise StockadeError("-sS: a SYN scan needs root (raw sockets); use -sT")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result = ScanResult(address, timing=timing or Timing())
    tm = result.timing
    start = time.monotonic()
    src = route_source(address)
    dst_bytes = ipaddress.ip_address(address).packed
    holder = socket.socket(family, socket.SOCK_STREAM)  # keeps the source port ours
    holder.bind((src, 0))
    sport = holder.getsockname()[1]
    seq = secrets.randbits(32)
    builder = SynBuilder(src, address, sport, seq)
    raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    try:
        if family == socket.AF_INET6:
            raw.setsockopt(socket.IPPROTO_IPV6, _IPV6_CHECKSUM, 16)
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 16 << 20)
        raw.setblocking(False)
        pending = list(dict.fromkeys(ports))
        sent_at: dict[int, float] = {}
        with_ip = family == socket.AF_INET

        def drain() -> None:
            while True:
                try:
                    packet, peer = raw.recvfrom(256)
                except BlockingIOError:
                    return
                got = parse_reply(packet, with_ip=with_ip, sport=sport, seq=seq)
                if got is None:
                    continue
                src_bytes, port, state = got
                if not with_ip:  # IPv6 raw sockets give the segment alone
                    src_bytes = ipaddress.ip_address(peer[0].partition("%")[0]).packed
                if src_bytes != dst_bytes:
                    continue
                t0 = sent_at.pop(port, None)
                if t0 is None or port in result.ports:
                    continue
                tm.sample(time.monotonic() - t0)
                result.ports[port] = state
                if attempt:
                    result.late += 1

        attempt = 0
        while pending and attempt <= (max(retries, lossy_retries) if result.late else retries):
            for i in range(0, len(pending), batch):
                for port in pending[i : i + batch]:
                    if rate:
                        due = start + result.tries / rate
                        while time.monotonic() < due:
                            drain()
                            time.sleep(0.0005)
                    sent_at[port] = time.monotonic()
                    try:
                        raw.sendto(builder.syn(port), (address, 0))
                    except BlockingIOError:
                        drain()
                        time.sleep(0.001)
                        raw.sendto(builder.syn(port), (address, 0))
                    except OSError:
                        result.ports.setdefault(port, FILTERED)  # unreachable
                        sent_at.pop(port, None)
                    result.tries += 1
                drain()
            # wait for the last answers: the adaptive time-out after the last send
            deadline = time.monotonic() + tm.timeout
            while time.monotonic() < deadline and sent_at:
                drain()
                time.sleep(0.002)
            pending = [p for p in pending if p not in result.ports]
            sent_at.clear()
            attempt += 1
        for port in pending:
            result.ports[port] = FILTERED
    finally:
        raw.close()
        holder.close()
    result.elapsed = time.monotonic() - start
    return result
