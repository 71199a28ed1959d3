"""The probes of host discovery as root, and the reading of their answers (see
:mod:`.discovery`; without root, :mod:`.discovery_connect`).

:class:`RawProbes`: per address family one raw ICMP socket, one raw TCP socket and one UDP
socket serve every target; TCP probes leave from a port a bound TCP socket holds, carry a
per-run secret sequence (SYN) or acknowledgement (ACK) number plus the try number, and answers
are matched on those (:func:`tcp_answer`); ICMP errors are matched on the probe they quote (our
echo identifier, our TCP or UDP source port) and judged by who sent them
(:func:`icmp_error_answer`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import secrets
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Protocol

from stockade.errors import StockadeError
from stockade.sensors.scan import icmp, tcp_probe
from stockade.sensors.scan.icmp_socket import IcmpSocket

_IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33
# probes to hosts whose neighbour is not yet resolved wait in the kernel, charged to the
# sending socket: room for a few thousand of them
_BUFFERS = 8 << 20
UNREACHABLE = ("host-unreach", "net-unreach")  # reasons that make a host down at once
_IGNORED = ("time-exceeded", "param-problem")


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back about ``address``: up or not, why, and which try it answers (when the
    answer says)."""

    address: str
    up: bool
    reason: str
    attempt: int | None = None


@dataclass
class Sent:
    packets: int = 0
    failure: str = ""  # why some probe could not be sent
    answers: list[Answer] = field(default_factory=list)  # answered at once (loopback)


class Probes(Protocol):
    def attach(self, ep: select.epoll) -> None: ...
    def send(self, address: str, attempt: int) -> Sent: ...
    def read(self, fd: int, events: int) -> list[Answer]: ...
    def forget(self, address: str) -> None: ...
    def close(self) -> None: ...


def send_failure(e: OSError) -> str:
    if e.errno == errno.ENETUNREACH:
        return "net-unreach"
    if e.errno == errno.EHOSTUNREACH:
        return "host-unreach"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "send-refused"  # our own firewall, or a broadcast address
    return "send-failed"


def _force_buffers(sock: socket.socket) -> None:
    for option in (_SO_SNDBUFFORCE, _SO_RCVBUFFORCE):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFERS)


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def icmp_error_answer(m: icmp.IcmpError) -> Answer | None:
    """An ICMP error about one of our probes: from the target itself it shows the host up
    (unless it says the host is unreachable); from anyone else it is a reason for down."""
    if m.reason in _IGNORED:
        return None
    attempt = m.orig_dport if m.orig_proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6) else None
    up = _same(m.source, m.orig_dst) and m.reason not in UNREACHABLE
    return Answer(m.orig_dst, up, m.reason, attempt if up else None)


def tcp_answer(
    seg: tcp_probe.Segment, syn_base: int, ack_base: int, retries: int
) -> tuple[str, int] | None:
    """(syn-ack | reset, the try) when ``seg`` answers one of our SYNs (its acknowledgement is
    ``syn_base + try + 1``) or bare ACKs (a reset with sequence ``ack_base + try``)."""
    to_syn = (seg.ack - 1 - syn_base) & 0xFFFFFFFF
    to_ack = (seg.seq - ack_base) & 0xFFFFFFFF
    syn_ack = tcp_probe.SYN | tcp_probe.ACK
    if seg.flags & syn_ack == syn_ack and to_syn <= retries:
        return "syn-ack", to_syn
    if seg.flags & tcp_probe.RST:
        if seg.flags & tcp_probe.ACK and to_syn <= retries:
            return "reset", to_syn
        if to_ack <= retries:
            return "reset", to_ack
    return None


class _RawFamily:
    """The sockets of one address family, shared by every target of that family."""

    def __init__(self, v6: bool) -> None:
        family = socket.AF_INET6 if v6 else socket.AF_INET
        # every local address: answers come to whichever one the kernel sent from
        any_address = "::" if v6 else "0.0.0.0"  # noqa: S104
        self.v6 = v6
        self.icmp = IcmpSocket(v6=v6, privileged=True, buffers=_BUFFERS)
        self.tcp = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.holder = socket.socket(family, socket.SOCK_STREAM)  # keeps our TCP port ours
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
        if v6:
            self.tcp.setsockopt(socket.IPPROTO_IPV6, _IPV6_CHECKSUM, 16)
        self.holder.bind((any_address, 0))
        self.udp.bind((any_address, 0))
        self.sport = int(self.holder.getsockname()[1])
        self.uport = int(self.udp.getsockname()[1])
        for sock in (self.tcp, self.udp):
            sock.setblocking(False)
            _force_buffers(sock)
        self.sources: dict[str, str | None] = {}

    def source(self, address: str) -> str | None:
        """The local address the kernel would use towards ``address`` (no packet is sent)."""
        if address not in self.sources:
            family = socket.AF_INET6 if self.v6 else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.connect((address, 9))
                    self.sources[address] = str(u.getsockname()[0])
                except OSError:
                    self.sources[address] = None
        return self.sources[address]

    def close(self) -> None:
        for sock in (self.tcp, self.holder, self.udp):
            sock.close()
        self.icmp.close()


class RawProbes:
    """Discovery probes through raw sockets (root)."""

    def __init__(self, syn_port: int, ack_port: int, udp_port: int, retries: int) -> None:
        self.syn_port, self.ack_port, self.udp_port = syn_port, ack_port, udp_port
        self.retries = retries
        self.syn_base, self.ack_base = secrets.randbits(32), secrets.randbits(32)
        self.cookie = secrets.token_bytes(8)
        self.families: dict[bool, _RawFamily] = {}
        self.by_fd: dict[int, tuple[_RawFamily, str]] = {}
        self.ep: select.epoll | None = None

    def attach(self, ep: select.epoll) -> None:
        self.ep = ep

    def _family(self, v6: bool) -> _RawFamily:
        fam = self.families.get(v6)
        if fam is None:
            try:
                fam = _RawFamily(v6)
            except PermissionError:
                raise StockadeError(
                    "host discovery: raw sockets need root (CAP_NET_RAW); run as root or -Pn"
                ) from None
            except OSError as e:  # e.g. IPv6 turned off
                version = 6 if v6 else 4
                raise StockadeError(
                    f"host discovery: cannot open IPv{version} sockets ({e.strerror}); "
                    f"leave out the IPv{version} targets or use -Pn"
                ) from None
            self.families[v6] = fam
            for sock, kind in ((fam.icmp, "icmp"), (fam.tcp, "tcp"), (fam.udp, "udp")):
                self.by_fd[sock.fileno()] = (fam, kind)
                if self.ep is not None:
                    self.ep.register(sock.fileno(), select.EPOLLIN)
        return fam

    def send(self, address: str, attempt: int) -> Sent:
        fam = self._family(":" in address)
        out = Sent()
        src = "" if fam.v6 else fam.source(address)
        if src is None:
            out.failure = "net-unreach"
            return out
        syn = tcp_probe.probe(
            src,
            address,
            fam.sport,
            self.syn_port,
            seq=self.syn_base + attempt,
            ack=0,
            flags=tcp_probe.SYN,
        )
        ack = tcp_probe.probe(
            src,
            address,
            fam.sport,
            self.ack_port,
            seq=secrets.randbits(32),
            ack=self.ack_base + attempt,
            flags=tcp_probe.ACK,
        )
        sends = (
            lambda: fam.icmp.send(address, attempt, self.cookie),
            lambda: fam.tcp.sendto(syn, (address, 0)),
            lambda: fam.tcp.sendto(ack, (address, 0)),
            lambda: fam.udp.sendto(b"", (address, self.udp_port)),
        )
        for send in sends:
            for _ in range(3):
                try:
                    send()
                    out.packets += 1
                    break
                except BlockingIOError:  # the send buffer is full: let it drain
                    time.sleep(0.001)
                except OSError as e:
                    out.failure = send_failure(e)
                    break
        return out

    def read(self, fd: int, events: int) -> list[Answer]:
        fam, kind = self.by_fd[fd]
        answers: list[Answer] = []
        for _ in range(4096):  # what is waiting, within reason
            try:
                if kind == "icmp":
                    answer = self._icmp(fam)
                elif kind == "tcp":
                    answer = self._tcp(fam)
                else:
                    _data, peer = fam.udp.recvfrom(2048)
                    answer = None
                    if peer[1] == self.udp_port:
                        answer = Answer(str(peer[0]).partition("%")[0], True, "udp-response")
            except BlockingIOError:
                break
            except OSError:
                continue  # an error queued on the socket: read past it
            if answer is not None:
                answers.append(answer)
        return answers

    def _icmp(self, fam: _RawFamily) -> Answer | None:
        m, _stamp = fam.icmp.receive()
        if isinstance(m, icmp.Echo):
            if m.reply and m.ident == fam.icmp.ident and m.payload[:8] == self.cookie:
                return Answer(m.source, True, "echo-reply", m.seq)
            return None
        if m is None:
            return None
        proto = socket.IPPROTO_ICMPV6 if fam.v6 else socket.IPPROTO_ICMP
        ours = {proto: fam.icmp.ident, socket.IPPROTO_TCP: fam.sport, socket.IPPROTO_UDP: fam.uport}
        if ours.get(m.orig_proto, -1) != m.orig_sport:
            return None
        return icmp_error_answer(m)

    def _tcp(self, fam: _RawFamily) -> Answer | None:
        packet, peer = fam.tcp.recvfrom(256)
        seg = tcp_probe.parse(packet, with_ip=not fam.v6)
        if seg is None or seg.dport != fam.sport:
            return None
        got = tcp_answer(seg, self.syn_base, self.ack_base, self.retries)
        if got is None:
            return None
        return Answer(seg.source or str(peer[0]).partition("%")[0], True, *got)

    def forget(self, address: str) -> None:
        return None  # shared sockets: nothing per host

    def close(self) -> None:
        for fam in self.families.values():
            fam.close()
        self.families.clear()
