"""Traceroute: the routers on the way to a host, hop by hop, as Linux ``traceroute`` finds them.

Probes go out with a growing TTL (hop limit) from the first TTL upward: UDP datagrams to port
33434 and up (one port per probe), or ICMP echo requests (``icmp=True``: an ICMP datagram
"ping" socket where ``net.ipv4.ping_group_range`` allows it, else a raw socket as root). The
kernel does the ICMP work, as for Linux traceroute: with ``IP_RECVERR``/``IPV6_RECVERR`` on the
probing socket, each ICMP error about one of our probes lands on the socket's error queue
(``MSG_ERRQUEUE``) as a ``sock_extended_err`` (ICMP type and code) followed by the address of
the host that sent it; the original destination port (UDP) or the quoted echo request (ICMP)
says which probe it answers, and ``SO_TIMESTAMPNS`` gives the time the answer arrived.

Time exceeded makes a hop; port unreachable (UDP) or an echo reply (ICMP) is the destination;
any other unreachable ends the trace with traceroute's mark (``!H``, ``!N``, ``!P``, ``!X`` …).
Several probes are in flight at once; a silent probe is a ``*`` after ``wait`` seconds, or
sooner — three adaptive time-outs (:class:`~stockade.sensors.scan.connect.Timing`) after it
was sent — once a probe to the same or a farther hop has answered.

Parsing the error queue's ancillary data (:mod:`.errqueue`) and building and parsing the echo
packets (:mod:`.icmp`) are pure functions, tested and fuzzed on their own; :func:`trace` is
the I/O.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from stockade.errors import StockadeError
from stockade.sensors.scan import icmp
from stockade.sensors.scan.connect import Timing, route_source
from stockade.sensors.scan.errqueue import (
    IP_RECVERR,
    IPV6_RECVERR,
    SO_TIMESTAMPNS,
    SOL_IPV6,
    Verdict,
    classify,
    parse_ancillary,
)
from stockade.sensors.scan.report import Hop

UDP_PORT = 33434  # traceroute's first destination port
PAYLOAD = bytes(32)  # 60-byte IPv4 packets (80 for IPv6), as traceroute sends by default


@dataclass
class TraceOptions:
    icmp: bool = False  # ICMP echo probes instead of UDP
    first_ttl: int = 1
    max_ttl: int = 30
    queries: int = 3  # probes per hop
    wait: float = 5.0  # seconds, at most, for one probe's answer
    port: int = 0  # UDP: the first destination port (0: 33434); ICMP: the first sequence number
    inflight: int = 16  # probes in flight at once


@dataclass
class _Probe:
    ttl: int
    key: int  # UDP: the destination port; ICMP: the sequence number
    sent: float = 0.0  # time.monotonic()
    sent_wall: float = 0.0  # time.time(), to compare with the kernel's arrival stamps
    done: bool = False  # answered, or given up
    address: str | None = None
    rtt: float | None = None
    mark: str = ""


@dataclass(frozen=True)
class _Answer:
    key: int
    address: str | None
    stamp: float  # arrival, seconds since the epoch
    verdict: Verdict


def check_route(address: str) -> None:
    """``StockadeError`` when there is no route to ``address`` (nothing is sent)."""
    route_source(address, "traceroute to {address}: no route ({reason})")


class _Prober:
    """The probing socket of one trace: UDP, ICMP datagram (ping) or raw ICMP."""

    def __init__(self, address: str, opts: TraceOptions) -> None:
        self.address = address
        self.target = ipaddress.ip_address(address.partition("%")[0])
        self.v6 = ":" in address
        self.family = socket.AF_INET6 if self.v6 else socket.AF_INET
        self.icmp = opts.icmp
        self.raw = False
        self.ident = secrets.randbits(16)
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        if not self.icmp:
            self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        else:
            try:  # a ping socket: no privilege needed where ping_group_range allows it
                self.sock = socket.socket(self.family, socket.SOCK_DGRAM, proto)
            except OSError:
                try:
                    self.sock = socket.socket(self.family, socket.SOCK_RAW, proto)
                except OSError as e:
                    raise StockadeError(
                        f"-I: no ICMP socket ({e.strerror}): ICMP probes need root or your "
                        "group in net.ipv4.ping_group_range; run as root or leave out -I"
                    ) from None
                self.raw = True
        try:
            self._setup()
        except BaseException:
            self.sock.close()
            raise

    def _setup(self) -> None:
        s = self.sock
        if self.v6:
            s.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
        else:
            s.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if self.raw:  # raw sockets see every ICMP message: let only echo replies through
            if self.v6:
                s.setsockopt(
                    socket.IPPROTO_ICMPV6, icmp.ICMP6_FILTER, icmp.icmp6_filter([icmp.ECHO_REPLY6])
                )
            else:
                s.setsockopt(icmp.SOL_RAW, icmp.ICMP_FILTER, icmp.icmp4_filter([icmp.ECHO_REPLY4]))
        s.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def send(self, probe: _Probe) -> None:
        if self.v6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, probe.ttl)
        else:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, probe.ttl)
        if self.icmp:
            data = icmp.echo_request(self.ident, probe.key, PAYLOAD, v6=self.v6)
            dest = (self.address, 0)
        else:
            data, dest = PAYLOAD, (self.address, probe.key)
        # An ICMP error also sets the socket's pending error, which the next send returns
        # (and clears) instead of sending: try again. A lasting error is a real one; a send
        # buffer full four times over leaves the probe unsent, to be a "*".
        for attempt in range(4):
            probe.sent, probe.sent_wall = time.monotonic(), time.time()
            try:
                self.sock.sendto(data, dest)
                return
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as e:
                if attempt == 3:
                    raise StockadeError(
                        f"traceroute to {self.address}: cannot send a probe with TTL "
                        f"{probe.ttl}: {e.strerror}"
                    ) from None

    def answers(self) -> Iterator[_Answer]:
        """Everything that arrived: ICMP errors from the error queue, then echo replies (or UDP
        replies) from the receive queue."""
        flags = socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
        while True:
            try:
                data, anc, _flags, dest = self.sock.recvmsg(512, 512, flags)
            except BlockingIOError:
                break
            err, stamp = parse_ancillary(anc)
            verdict = None if err is None else classify(err)
            if err is None or verdict is None:
                continue
            key = self._quoted_key(data, dest)
            if key is not None:
                yield _Answer(key, err.offender, stamp or time.time(), verdict)
        while True:
            try:
                data, anc, _flags, peer = self.sock.recvmsg(512, 512, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:  # a pending ICMP error, reported (and cleared) by this call
                continue
            _err, stamp = parse_ancillary(anc)
            key = self._reply_key(data, peer)
            if key is not None:
                source = str(ipaddress.ip_address(str(peer[0]).partition("%")[0]))
                yield _Answer(key, source, stamp or time.time(), Verdict("", final=True))

    def _quoted_key(self, data: bytes, dest: object) -> int | None:
        """Which probe an ICMP error quotes: the original destination port (UDP), or the
        sequence of the quoted echo request (ICMP)."""
        if not self.icmp:
            if not isinstance(dest, tuple) or len(dest) < 2 or not self._is_target(dest[0]):
                return None
            return int(dest[1])
        echo = icmp.echo_in(data, v6=self.v6)
        if echo is None or echo.reply:
            return None
        if self.raw and echo.ident != self.ident:
            return None  # another raw socket's probe
        return echo.seq

    def _reply_key(self, data: bytes, peer: object) -> int | None:
        if not isinstance(peer, tuple) or not peer:
            return None
        if not self.icmp:  # a UDP answer from the destination port we probed
            return int(peer[1]) if self._is_target(peer[0]) else None
        echo = icmp.echo_in(data, v6=self.v6, with_ip=self.raw and not self.v6)
        if echo is None or not echo.reply:
            return None
        if self.raw and echo.ident != self.ident:
            return None  # another program's echo (a ping socket only gets its own)
        return echo.seq

    def _is_target(self, host: object) -> bool:
        try:
            got = ipaddress.ip_address(str(host).partition("%")[0])
        except ValueError:
            return False
        return got == self.target


def _probes(opts: TraceOptions) -> list[_Probe]:
    first = opts.port or (UDP_PORT if not opts.icmp else 1)
    out: list[_Probe] = []
    for ttl in range(opts.first_ttl, opts.max_ttl + 1):
        for _ in range(opts.queries):
            key = first + len(out)
            out.append(_Probe(ttl, key & 0xFFFF if opts.icmp else key))
    return out


def _hop(probes: Sequence[_Probe]) -> Hop:
    responders = [p.address for p in probes]
    address = next((a for a in responders if a is not None), None)
    return Hop(
        ttl=probes[0].ttl,
        address=address,
        rtts=[p.rtt for p in probes],
        responders=responders,
        marks=[p.mark for p in probes],
    )


class _Run:
    """The bookkeeping of one trace: which probes fly, when each gives up, which hops are done."""

    def __init__(self, opts: TraceOptions, on_hop: Callable[[Hop], None] | None) -> None:
        self.opts, self.on_hop = opts, on_hop
        probes = _probes(opts)  # in the order they go out: by TTL
        self.by_ttl: dict[int, list[_Probe]] = {}
        for probe in probes:
            self.by_ttl.setdefault(probe.ttl, []).append(probe)
        self.queue = iter(probes)
        self.upcoming = next(self.queue, None)
        self.flying: dict[int, _Probe] = {}
        wait = opts.wait
        self.timing = Timing(initial=wait, minimum=min(0.1, wait), maximum=wait)
        self.last = opts.max_ttl  # the last TTL to report: lowered when a probe reaches the end
        self.farthest = 0  # the highest TTL that has answered
        self.hops: list[Hop] = []

    @property
    def finished(self) -> bool:
        return self.opts.first_ttl + len(self.hops) > self.last

    def can_send(self) -> bool:
        up = self.upcoming
        return up is not None and up.ttl <= self.last and len(self.flying) < self.opts.inflight

    def next_probe(self) -> _Probe:
        probe = self.upcoming
        assert probe is not None
        self.flying[probe.key] = probe
        self.upcoming = next(self.queue, None)
        return probe

    def deadline(self, p: _Probe) -> float:
        if self.farthest >= p.ttl:  # a hop as far or farther answered: no need to wait long
            return p.sent + min(self.opts.wait, 3 * self.timing.timeout)
        return p.sent + self.opts.wait

    def answer(self, got: _Answer) -> None:
        p = self.flying.pop(got.key, None)
        if p is None:  # late, or not ours
            return
        p.done, p.address, p.mark = True, got.address, got.verdict.mark
        p.rtt = round(max(0.0, got.stamp - p.sent_wall), 6)  # µs, as printed
        self.timing.sample(p.rtt)
        self.farthest = max(self.farthest, p.ttl)
        if got.verdict.final:
            self.last = min(self.last, p.ttl)

    def expire(self, now: float) -> None:
        for key, p in list(self.flying.items()):
            if p.ttl > self.last:
                del self.flying[key]  # beyond the end of the path
            elif now >= self.deadline(p):
                del self.flying[key]
                p.done = True  # silent: a "*"

    def complete_hops(self) -> None:
        while not self.finished:
            probes = self.by_ttl[self.opts.first_ttl + len(self.hops)]
            if not all(p.done for p in probes):
                return
            self.hops.append(_hop(probes))
            if self.on_hop is not None:
                self.on_hop(self.hops[-1])

    def wait_for(self, now: float) -> float:
        return max(0.0, min(self.deadline(p) for p in self.flying.values()) - now)


def trace(
    address: str,
    opts: TraceOptions | None = None,
    *,
    on_hop: Callable[[Hop], None] | None = None,
) -> list[Hop]:
    """The hops to ``address`` (an IP address) from ``opts.first_ttl`` up to the destination,
    the first other unreachable, or ``opts.max_ttl``; ``on_hop`` gets each hop as soon as it and
    every hop before it are complete, in order (to print them as they come)."""
    opts = opts or TraceOptions()
    check_route(address)
    run = _Run(opts, on_hop)
    prober = _Prober(address, opts)
    try:
        poller = select.poll()
        poller.register(prober.sock, select.POLLIN)  # and POLLERR: the error queue
        while not run.finished:
            while run.can_send():
                prober.send(run.next_probe())
            for got in prober.answers():
                run.answer(got)
            now = time.monotonic()
            run.expire(now)
            run.complete_hops()
            if not run.finished and not run.can_send() and run.flying:
                poller.poll(math.ceil(run.wait_for(now) * 1000))
    finally:
        prober.close()
    return run.hops
