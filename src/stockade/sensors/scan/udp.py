"""UDP port scan of one host: one connected UDP socket per port in flight, driven by epoll.

Each port is sent its protocol's request (:mod:`.udp_probes`; a port with several payloads
gets the next one at each try). A datagram back means ``open``; ICMP port unreachable
``closed``; another ICMP unreachable (host, protocol, network, administratively prohibited)
``filtered``; silence after every try ``open|filtered`` — nmap's states. The ICMP errors come
to the port's own socket: a connected UDP socket with ``IP_RECVERR`` queues them with their
type and code.

Linux sends at most about one ICMP unreachable a second to a peer after a burst of six
(``net.ipv4.icmp_ratelimit``), so most closed ports of a Linux host are silent at first and
only a later try shows them closed. The scan therefore goes in rounds over the ports still
unknown, and:

- a round is started only once ``icmp_wait`` (1 s, Linux's default period) has passed since
  the last ICMP error came, so the target's limiter has at least one answer in hand;
- a round that brought no ICMP error at all is *quiet*: with an answer in hand, none of its
  silent ports is closed (unless packets were lost). Only quiet rounds count as tries against
  ``retries``; a round with ICMP errors resolves those ports and tries the others again;
- after a round with ICMP errors the next round probes a window of the unknown ports (twice
  the errors it brought, at least 16) rather than all of them — the limiter answers only so
  many, the rest would be wasted packets; quiet rounds double the window again;
- once a port answers after a quiet round in which it was silent, the host loses packets and
  silent ports need ``lossy_retries`` quiet rounds instead.

Every round with an ICMP error resolves at least one port, so the scan ends after at most one
such round per closed or filtered port plus the quiet rounds: a Linux host with N closed
ports costs about N seconds (nmap's UDP scan costs the same), one that answers every probe
costs one round plus the quiet ones.
"""

from __future__ import annotations

import contextlib
import errno
import math
import select
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from stockade.sensors.scan.connect import (
    CLOSED,
    FILTERED,
    OPEN,
    ScanResult,
    Timing,
    raise_fd_limit,
    route_source,
)
from stockade.sensors.scan.udp_probes import Payloads, load_payloads

OPEN_FILTERED = "open|filtered"
ORIGIN_LOCAL, ORIGIN_ICMP, ORIGIN_ICMP6 = 1, 2, 3
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_EE = struct.Struct("=IBBBBII")  # struct sock_extended_err
# ICMP destination unreachable codes that nmap reports as filtered (port unreachable: closed)
_V4_FILTERED = {0, 1, 2, 9, 10, 13}
_V6_FILTERED = {0, 1, 2, 3, 5, 6}
_ERRNO_STATE = {
    errno.ECONNREFUSED: CLOSED,
    errno.EHOSTUNREACH: FILTERED,
    errno.ENETUNREACH: FILTERED,
    errno.EACCES: FILTERED,
    errno.EPERM: FILTERED,
}


@dataclass
class UdpScanResult(ScanResult):
    rounds: int = 0
    waited: float = 0.0  # seconds spent waiting for the target's ICMP limiter
    replies: dict[int, bytes] = field(default_factory=dict)  # the first datagram of open ports


def icmp_state(origin: int, icmp_type: int, code: int) -> str | None:
    """The port state an ICMP error shows (closed or filtered), None for one that says
    nothing about the port (time exceeded, fragmentation needed, local errors …)."""
    if origin == ORIGIN_ICMP and icmp_type == 3:
        return CLOSED if code == 3 else FILTERED if code in _V4_FILTERED else None
    if origin == ORIGIN_ICMP6 and icmp_type == 1:
        return CLOSED if code == 4 else FILTERED if code in _V6_FILTERED else None
    return None


def parse_recverr(ancdata: Iterable[tuple[int, int, bytes]]) -> tuple[int, int, int] | None:
    """(origin, ICMP type, code) of the ``sock_extended_err`` in a ``MSG_ERRQUEUE`` message's
    ancillary data; None when there is none or it is short."""
    for level, kind, data in ancdata:
        if (level, kind) in (
            (socket.IPPROTO_IP, _IP_RECVERR),
            (socket.IPPROTO_IPV6, _IPV6_RECVERR),
        ):
            if len(data) < _EE.size:
                return None
            _errno, origin, icmp_type, code, _pad, _info, _data = _EE.unpack_from(data)
            return origin, icmp_type, code
    return None


@dataclass
class _Flight:
    sock: socket.socket
    port: int
    sent: float
    deadline: float


class _Prober:
    """Sends one datagram per port on its own connected socket and collects what comes back."""

    def __init__(self, address: str, result: UdpScanResult, concurrency: int, rate: int) -> None:
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.result = result
        self.concurrency = raise_fd_limit(concurrency)
        self.rate = rate
        self.next_send = 0.0
        self.ep = select.epoll()
        self.flying: dict[int, _Flight] = {}
        # deadlines in the order sent (the time-out moves little): checked from the head
        self.deadlines: deque[_Flight] = deque()

    def close(self) -> None:
        for f in self.flying.values():
            f.sock.close()
        self.flying.clear()
        self.deadlines.clear()
        self.ep.close()

    def round(self, probes: list[tuple[int, bytes]]) -> dict[int, tuple[str, float]]:
        """Send ``probes`` (port, payload); return port -> (state, arrival time) for every
        port that answered before its time-out."""
        answers: dict[int, tuple[str, float]] = {}
        todo = deque(probes)
        while todo or self.flying:
            now = time.monotonic()
            wait = 0.05
            while todo and len(self.flying) < self.concurrency:
                if self.rate and self.next_send > now:
                    wait = min(wait, self.next_send - now)
                    break
                port, payload = todo[0]
                state = self._send(port, payload, now)
                if state == "again":  # out of buffers or local ports: let the flight land
                    wait = 0.001
                    break
                todo.popleft()
                if self.rate:
                    self.next_send = max(self.next_send, now) + 1 / self.rate
                if state is not None:
                    answers[port] = (state, now)
            self._poll(answers, wait)
        return answers

    def _send(self, port: int, payload: bytes, now: float) -> str | None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
            sock.connect((self.address, port))
            if sock.getsockname()[:2] == sock.getpeername()[:2]:
                sock.close()  # the kernel gave us the target port as our own: nobody has it
                return CLOSED
            sock.send(payload)
        except OSError as e:
            sock.close()
            if e.errno in (errno.EAGAIN, errno.ENOBUFS, errno.EADDRNOTAVAIL):
                return "again"
            return _ERRNO_STATE.get(e.errno or 0, FILTERED)
        self.result.tries += 1
        flight = _Flight(sock, port, now, now + self.result.timing.timeout)
        self.flying[sock.fileno()] = flight
        self.deadlines.append(flight)
        self.ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLERR)
        return None

    def _poll(self, answers: dict[int, tuple[str, float]], wait: float) -> None:
        while self.deadlines and self.deadlines[0].sock.fileno() < 0:
            self.deadlines.popleft()  # landed already: its socket is closed
        if self.flying:
            if self.deadlines:
                wait = max(0.0, min(wait, self.deadlines[0].deadline - time.monotonic()))
            events = self.ep.poll(wait, 1024)
        else:
            time.sleep(wait)
            events = []
        for fd, mask in events:
            flight = self.flying.get(fd)
            if flight is None:
                continue
            state = self._read(flight, mask)
            if state is not None:
                now = time.monotonic()
                self.result.timing.sample(now - flight.sent)
                answers[flight.port] = (state, now)
                self._land(fd)
        now = time.monotonic()
        while self.deadlines and self.deadlines[0].deadline <= now:
            flight = self.deadlines.popleft()
            if flight.sock.fileno() >= 0:
                self._land(flight.sock.fileno())

    def _read(self, flight: _Flight, mask: int) -> str | None:
        if mask & select.EPOLLIN:
            try:
                data = flight.sock.recv(65535)
            except OSError:
                pass  # an error is pending: read it from the error queue below
            else:
                self.result.replies.setdefault(flight.port, data[:512])
                return OPEN
        try:
            _data, ancdata, _flags, _addr = flight.sock.recvmsg(0, 512, socket.MSG_ERRQUEUE)
        except BlockingIOError:  # no queued ICMP error; an error without one, if any
            err = flight.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return _ERRNO_STATE.get(err)
        got = parse_recverr(ancdata)
        return None if got is None else icmp_state(*got)

    def _land(self, fd: int) -> None:
        flight = self.flying.pop(fd)
        with contextlib.suppress(OSError):
            self.ep.unregister(fd)
        flight.sock.close()


def udp_scan(
    address: str,
    ports: Iterable[int],
    *,
    retries: int = 2,
    timing: Timing | None = None,
    rate: int = 0,
    concurrency: int = 4096,
    payloads: Payloads | None = None,
    lossy_retries: int = 6,
    icmp_wait: float = 1.0,
    window_min: int = 16,
) -> UdpScanResult:
    """Scan ``ports`` of ``address``; ``rate`` > 0 caps datagrams per second, ``concurrency``
    the sockets in flight. ``retries`` is the number of quiet rounds a silent port must stay
    silent through (``lossy_retries`` once the host has shown it loses packets)."""
    unknown = deque(dict.fromkeys(ports))
    if 0 in unknown:
        raise ValueError("UDP port 0 cannot be sent to from a socket")
    route_source(address)  # a one-line error when there is no route
    table = payloads if payloads is not None else load_payloads()
    result = UdpScanResult(address, timing=timing or Timing(minimum=0.25))
    start = time.monotonic()
    tries: Counter[int] = Counter()  # datagrams sent to the port
    clean: Counter[int] = Counter()  # quiet rounds the port was silent in
    lossy = False
    window = len(unknown)
    last_icmp: float | None = None  # when the last ICMP error came
    gap = icmp_wait  # the pause after it before the next round
    prober = _Prober(address, result, concurrency, rate)
    try:
        while unknown:
            since = math.inf
            if last_icmp is not None:
                pause = last_icmp + gap - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                    result.waited += pause
                since = time.monotonic() - last_icmp
            batch = [unknown.popleft() for _ in range(max(1, min(window, len(unknown))))]
            probes = []
            for port in batch:
                choices = table.for_port(port)
                probes.append((port, choices[tries[port] % len(choices)]))
                tries[port] += 1
            answers = prober.round(probes)
            result.rounds += 1
            icmp = [t for s, t in answers.values() if s != OPEN]
            # silence counts only after a full pause: the limiter had an answer in hand
            quiet = not icmp and since >= icmp_wait
            need = (max(retries, lossy_retries) if lossy else retries) + 1
            for port in batch:
                got = answers.get(port)
                if got is not None:
                    result.ports[port] = got[0]
                    result.late += int(tries[port] > 1)
                    lossy = lossy or clean[port] > 0
                    continue
                clean[port] += int(quiet)
                if clean[port] >= need and tries[port] >= len(table.for_port(port)):
                    result.ports[port] = OPEN_FILTERED
                else:
                    unknown.append(port)
            if icmp:
                # n errors after a pause of `since`: the limiter refills about n per `since`
                gap = min(icmp_wait, since / len(icmp))
                last_icmp = max(icmp)
                window = max(window_min, 2 * len(icmp))
            else:
                gap, window = icmp_wait, 2 * window
    finally:
        prober.close()
    result.elapsed = time.monotonic() - start
    return result
