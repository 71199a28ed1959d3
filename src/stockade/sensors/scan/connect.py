"""TCP connect scan of one host (no root needed): non-blocking connects driven by epoll.

Thousands of connects are in flight at once. A port is ``open`` when the handshake completes,
``closed`` when the host answers with a reset, ``filtered`` when nothing comes back after every
try, or an ICMP error says it is unreachable. The time-out adapts to the round-trip times the
host has shown (as TCP's RTO: smoothed RTT plus four deviations, within bounds), so a host that
drops packets to closed ports costs a few round trips, not seconds per port; a port that did not
answer is tried again (``retries``) before it is called filtered, so one lost packet never hides
an open port. Open connections are closed with a reset (SO_LINGER 0): nothing is left in
TIME-WAIT and the service sees no data.
"""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from stockade.errors import StockadeError

OPEN, CLOSED, FILTERED = "open", "closed", "filtered"
_LINGER0 = struct.pack("ii", 1, 0)
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


@dataclass
class Timing:
    """Adaptive time-out, as TCP computes its retransmission time-out (RFC 6298)."""

    initial: float = 1.0
    minimum: float = 0.1
    maximum: float = 3.0
    srtt: float | None = None
    rttvar: float = 0.0

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    @property
    def timeout(self) -> float:
        if self.srtt is None:
            return self.initial
        return min(self.maximum, max(self.minimum, self.srtt + 4 * self.rttvar))


@dataclass
class ScanResult:
    address: str
    ports: dict[int, str] = field(default_factory=dict)
    tries: int = 0
    late: int = 0  # answers that came only to a repeated try: the host loses packets
    elapsed: float = 0.0
    timing: Timing = field(default_factory=Timing)

    def with_state(self, state: str) -> list[int]:
        return sorted(p for p, s in self.ports.items() if s == state)


def _self_connected(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockname()[:2] == sock.getpeername()[:2])
    except OSError:
        return False


def route_source(address: str, error: str = "{address}: no route ({reason})") -> str:
    """The local address the kernel would send from to reach ``address`` (no packet is sent);
    a ``StockadeError`` worded by ``error`` (fields ``address`` and ``reason``) when there is
    no route."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        try:
            u.connect((address, 9))
        except OSError as e:
            raise StockadeError(error.format(address=address, reason=e.strerror)) from None
        return str(u.getsockname()[0])


def raise_fd_limit(want: int) -> int:
    """Raise the soft limit of open files towards ``want``; return the usable concurrency."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(want, soft - 64))


def connect_scan(
    address: str,
    ports: Iterable[int],
    *,
    concurrency: int = 4096,
    retries: int = 2,
    timing: Timing | None = None,
    rate: int = 0,
    lossy_retries: int = 6,
) -> ScanResult:
    """Scan ``ports`` of ``address``; ``rate`` > 0 caps new connects per second. Once a port
    has answered only to a second try, the host is known to lose packets and silent ports get
    up to ``lossy_retries`` tries after the first."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    result = ScanResult(address, timing=timing or Timing())
    tm = result.timing
    start = time.monotonic()
    concurrency = raise_fd_limit(concurrency)
    todo: deque[tuple[int, int]] = deque((p, 0) for p in ports)
    # fd -> (socket, port, try number, start time)
    flying: dict[int, tuple[socket.socket, int, int, float]] = {}
    deadlines: deque[tuple[float, int, socket.socket]] = deque()
    ep = select.epoll()
    sent = 0

    def finish(fd: int, state: str | None, now: float) -> None:
        sock, port, tries, t0 = flying.pop(fd)
        if state == OPEN and _self_connected(sock):
            state = CLOSED  # loopback: the kernel picked the target port as our own
        if state in (OPEN, CLOSED):
            tm.sample(now - t0)
            if tries:
                result.late += 1
        with contextlib.suppress(OSError):
            ep.unregister(fd)
        if state == OPEN:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        sock.close()
        if state is None:  # no answer: again, or filtered
            if tries < (max(retries, lossy_retries) if result.late else retries):
                todo.append((port, tries + 1))
            else:
                result.ports[port] = FILTERED
        else:
            result.ports[port] = state

    try:
        while todo or flying:
            now = time.monotonic()
            while todo and len(flying) < concurrency:
                if rate and sent >= rate * (now - start) + 1:
                    break
                port, tries = todo.popleft()
                sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                result.tries += 1
                sent += 1
                err = sock.connect_ex((address, port))
                fd = sock.fileno()
                flying[fd] = (sock, port, tries, now)
                if err == errno.EINPROGRESS:
                    ep.register(fd, select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP)
                    deadlines.append((now + tm.timeout, fd, sock))
                elif err == 0:
                    finish(fd, OPEN, now)
                elif err == errno.ECONNREFUSED:
                    finish(fd, CLOSED, now)
                elif err in _UNREACHABLE:
                    finish(fd, FILTERED, now)
                elif err in (errno.EAGAIN, errno.EADDRNOTAVAIL, errno.ENOBUFS):
                    # out of local ports or buffers: put it back and let the flight land
                    flying.pop(fd)
                    sock.close()
                    result.tries -= 1
                    todo.appendleft((port, tries))
                    break
                else:
                    finish(fd, FILTERED, now)
            wait = 0.05
            if deadlines:
                wait = max(0.0, min(wait, deadlines[0][0] - now))
            if not flying:
                if todo:
                    time.sleep(min(wait, 0.01))
                continue
            for fd, _ in ep.poll(wait, 1024):
                entry = flying.get(fd)
                if entry is None:
                    continue
                err = entry[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                now = time.monotonic()
                if err == 0:
                    finish(fd, OPEN, now)
                elif err == errno.ECONNREFUSED:
                    finish(fd, CLOSED, now)
                elif err in _UNREACHABLE:
                    finish(fd, FILTERED, now)
                else:  # ETIMEDOUT and the like: no answer
                    finish(fd, None, now)
            now = time.monotonic()
            while deadlines and deadlines[0][0] <= now:
                _, fd, sock = deadlines.popleft()
                entry = flying.get(fd)
                if entry is not None and entry[0] is sock:
                    finish(fd, None, now)
            # deadlines are appended in time order except when the time-out shrinks: keep the
            # head honest by skipping entries whose flight already landed
            while deadlines and flying.get(deadlines[0][1], (None,))[0] is not deadlines[0][2]:
                deadlines.popleft()
    finally:
        for sock, *_ in flying.values():
            sock.close()
        ep.close()
    result.elapsed = time.monotonic() - start
    return result
