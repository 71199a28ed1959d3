"""Host discovery: which of many targets are up, all probed at once (nmap's ping scan, ``-sn``).

Each try sends a host four probes, as nmap does by default as root: an ICMP echo request, a
TCP SYN to 443 and a TCP ACK to 80 (a SYN-ACK or a reset means someone is there, open port or
not), and an empty UDP datagram to a port that is almost always closed (40125, nmap's ``-PU``
default: an ICMP port unreachable, or an answer, means up). As root they go out through one
raw socket per protocol for all targets (:class:`~.discovery_probes.RawProbes`); without root
through connect() to 80 and 443, a connected UDP socket and an ICMP datagram socket where the
system allows one (:class:`~.discovery_connect.ConnectProbes`).

A host that does not answer a try is tried again, ``retries`` times, after the adaptive
time-out (:class:`~.connect.Timing`, learnt from all hosts' answers, one more time-out for
each repeat),
so a lost packet does not make a host down; and none is called down before the kernel has
asked for its link-layer address a second time (a lost ARP request or neighbour solicitation
is repeated after a second, holding our probes meanwhile). A host is down when every try went
unanswered
(``no-response``), or when a router (or our own kernel, after neighbour discovery failed) says
it cannot be reached (``host-unreach``, ``net-unreach``). Up hosts say why: ``echo-reply``,
``syn-ack``, ``reset``, ``port-unreach``, ``proto-unreach``, ``admin-prohibited`` (from the
host itself) or ``udp-response``; with the round-trip time of that answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from stockade.sensors.scan.connect import Timing
from stockade.sensors.scan.discovery_connect import ConnectProbes
from stockade.sensors.scan.discovery_probes import UNREACHABLE, Answer, Probes, RawProbes
from stockade.sensors.scan.report import DOWN, UP, HostReport
from stockade.sensors.scan.targets import Target

# hosts sent to between two reads of the sockets: answers are timed as they arrive, not
# after a long burst of sending
_BATCH = 16


@dataclass
class _Host:
    target: Target
    report: HostReport
    sent: list[float] = field(default_factory=list)  # send time of each try
    hint: str = ""  # an ICMP error from on the way (e.g. admin-prohibited), said when down

    @property
    def attempt(self) -> int:
        return len(self.sent) - 1


def neighbour_retransmit() -> float:
    """Seconds between the kernel's ARP requests / neighbour solicitations (1 s by default)."""
    try:
        with open("/proc/sys/net/ipv4/neigh/default/retrans_time_ms", encoding="ascii") as f:
            return int(f.read().strip()) / 1000
    except (OSError, ValueError):
        return 1.0


def _key(address: str) -> str:
    return str(ipaddress.ip_address(address.partition("%")[0]))


def discover(
    targets: Sequence[Target],
    *,
    retries: int = 2,
    privileged: bool | None = None,
    timing: Timing | None = None,
    rate: int = 0,
    max_hosts: int = 512,
    settle: float | None = None,
    syn_port: int = 443,
    ack_port: int = 80,
    udp_port: int = 40125,
) -> list[HostReport]:
    """Probe every target (``max_hosts`` at a time) and return one report per target, in
    order, with state, reason and RTT filled in. ``privileged`` None means raw probes as root;
    ``rate`` > 0 caps probe packets per second. No host is called down sooner than ``settle``
    seconds and a time-out after its first probe (None: the kernel's interval between ARP
    requests or neighbour solicitations, so that a lost one, asked again after that
    interval, does not make a live host down)."""
    if settle is None:
        settle = neighbour_retransmit()
    raw = os.geteuid() == 0 if privileged is None else privileged
    probes: Probes
    if raw:
        probes = RawProbes(syn_port, ack_port, udp_port, retries)
    else:
        probes = ConnectProbes(syn_port, ack_port, udp_port)
        # each try of a host holds three sockets until the host is settled
        max_hosts = min(max_hosts, probes.fd_room // (3 * (retries + 1) + 1))
    try:
        return _Run(probes, retries, timing or Timing(), rate, max_hosts, settle).run(targets)
    finally:
        probes.close()


class _Run:
    def __init__(
        self, probes: Probes, retries: int, tm: Timing, rate: int, max_hosts: int, settle: float
    ) -> None:
        self.probes, self.retries, self.tm, self.settle = probes, retries, tm, settle
        self.rate, self.max_hosts = rate, max(1, max_hosts)
        self.active: dict[str, _Host] = {}
        self.levels: list[deque[_Host]] = [deque() for _ in range(retries + 1)]
        self.start = time.monotonic()
        self.packets = 0
        self.budget = _BATCH

    def run(self, targets: Sequence[Target]) -> list[HostReport]:
        hosts: dict[str, _Host] = {}  # an address named twice is probed once
        for t in targets:
            hosts.setdefault(_key(t.address), _Host(t, HostReport(t.address, t.name or None)))
        waiting = deque(hosts.values())
        ep = select.epoll()
        try:
            self.probes.attach(ep)
            while waiting or self.active:
                now = time.monotonic()
                self.budget = _BATCH
                self._expire(now)
                while waiting and len(self.active) < self.max_hosts and self._may_send(now):
                    host = waiting.popleft()
                    self.active[_key(host.target.address)] = host
                    self._send(host, now)
                wait = self._next_deadline() - time.monotonic()
                if waiting and len(self.active) < self.max_hosts:
                    # more to send: read what came meanwhile (or wait for the rate cap)
                    wait = min(wait, 0.0 if self.budget <= 0 else 0.002)
                for fd, events in ep.poll(max(0.0, min(wait, 0.05)), 1024):
                    for answer in self.probes.read(fd, events):
                        self._answer(answer, time.monotonic())
        finally:
            ep.close()
        return [hosts[_key(t.address)].report for t in targets]

    def _may_send(self, now: float) -> bool:
        if self.budget <= 0:
            return False
        return not self.rate or self.packets < self.rate * (now - self.start) + 4

    def _timeout(self, attempt: int) -> float:
        if self.tm.srtt is None:
            return self.tm.timeout  # nothing heard yet: no reason to back off
        return min(self.tm.maximum, self.tm.timeout * (1 + attempt))

    def _deadline(self, host: _Host, k: int) -> float:
        """When try ``k`` of ``host`` has gone unanswered."""
        due = host.sent[k] + self._timeout(k)
        if k == self.retries:
            due = max(due, host.sent[0] + self.settle + self._timeout(0))
        return due

    def _next_deadline(self) -> float:
        heads = [self._deadline(level[0], k) for k, level in enumerate(self.levels) if level]
        return min(heads, default=time.monotonic() + 0.05)

    def _send(self, host: _Host, now: float) -> None:
        self.budget -= 1
        host.sent.append(now)
        self.levels[host.attempt].append(host)
        sent = self.probes.send(host.target.address, host.attempt)
        self.packets += sent.packets
        for answer in sent.answers:
            self._answer(answer, time.monotonic())
        if not sent.packets and _key(host.target.address) in self.active:
            # nothing could be sent: no route, or our own firewall refuses
            self._settle(host, DOWN, sent.failure or "net-unreach", None, now)

    def _expire(self, now: float) -> None:
        for k, level in enumerate(self.levels):
            while level:
                host = level[0]
                if _key(host.target.address) not in self.active or host.attempt != k:
                    level.popleft()  # settled, or tried again since
                    continue
                if self._deadline(host, k) > now:
                    break
                level.popleft()
                if k < self.retries and self._may_send(now):
                    self._send(host, now)
                elif k < self.retries:
                    level.appendleft(host)  # rate-capped: it stays due
                    break
                else:
                    self._settle(host, DOWN, host.hint or "no-response", None, now)

    def _answer(self, a: Answer, now: float) -> None:
        host = self.active.get(_key(a.address))
        if host is None:
            return  # not ours, or settled already
        if not a.up:
            if a.reason in UNREACHABLE:
                self._settle(host, DOWN, a.reason, None, now)
            else:
                host.hint = a.reason
            return
        known = a.attempt is not None and 0 <= a.attempt <= host.attempt
        t0 = host.sent[a.attempt] if known and a.attempt is not None else host.sent[-1]
        rtt = max(0.0, now - t0)
        if known or host.attempt == 0:  # Karn: only unambiguous samples
            self.tm.sample(rtt)
        self._settle(host, UP, a.reason, rtt, now)

    def _settle(self, host: _Host, state: str, reason: str, rtt: float | None, now: float) -> None:
        self.active.pop(_key(host.target.address), None)
        with contextlib.suppress(OSError):
            self.probes.forget(host.target.address)
        host.report.state, host.report.reason, host.report.rtt = state, reason, rtt
        host.report.elapsed = now - self.start
