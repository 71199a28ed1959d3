"""The probes of host discovery without root (see :mod:`.discovery`): a connect() to each of
the two TCP ports (handshake done: ``syn-ack``; refused: ``reset``), a connected UDP socket
(ECONNREFUSED is the ICMP port unreachable: ``port-unreach``), and ICMP echo through a datagram
("ping") socket when ``net.ipv4.ping_group_range`` allows one. Each try opens its own sockets,
kept until the host is settled, so a late answer to an earlier try still counts.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import select
import socket
import struct

from stockade.errors import StockadeError
from stockade.sensors.scan import icmp
from stockade.sensors.scan.connect import raise_fd_limit
from stockade.sensors.scan.discovery_probes import Answer, Sent, send_failure
from stockade.sensors.scan.icmp_socket import IcmpSocket

_LINGER0 = struct.pack("ii", 1, 0)  # close with a reset: nothing left in TIME-WAIT


class ConnectProbes:
    """Discovery probes without root: connect(), a connected UDP socket, a ping socket."""

    def __init__(self, syn_port: int, ack_port: int, udp_port: int) -> None:
        self.ports = (syn_port, ack_port)
        self.udp_port = udp_port
        self.cookie = secrets.token_bytes(8)
        self.pingers: dict[bool, IcmpSocket | None] = {}
        self.socks: dict[int, tuple[socket.socket, str, str, int]] = {}  # fd -> sock, address…
        self.by_host: dict[str, list[int]] = {}
        self.ep: select.epoll | None = None
        self.fd_room = raise_fd_limit(8192)  # how many sockets may be open at once

    def attach(self, ep: select.epoll) -> None:
        self.ep = ep

    def _pinger(self, v6: bool) -> IcmpSocket | None:
        if v6 not in self.pingers:
            try:
                pinger: IcmpSocket | None = IcmpSocket(v6=v6, privileged=False)
            except (StockadeError, OSError):
                pinger = None  # ping sockets are not allowed to us: TCP and UDP only
            self.pingers[v6] = pinger
            if pinger is not None and self.ep is not None:
                self.ep.register(pinger.fileno(), select.EPOLLIN)
        return self.pingers[v6]

    def send(self, address: str, attempt: int) -> Sent:
        v6 = ":" in address
        family = socket.AF_INET6 if v6 else socket.AF_INET
        out = Sent()
        pinger = self._pinger(v6)
        if pinger is not None:
            try:
                pinger.send(address, attempt, self.cookie)
                out.packets += 1
            except OSError as e:
                out.failure = send_failure(e)
        for port in (*self.ports, self.udp_port):
            kind = "udp" if port == self.udp_port else "tcp"
            try:
                sock = socket.socket(
                    family, (socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
                )
            except OSError as e:  # out of file descriptors: this probe waits for the next try
                out.failure = send_failure(e)
                continue
            sock.setblocking(False)
            err = sock.connect_ex((address, port))
            if kind == "udp" and not err:
                try:
                    sock.send(b"")
                except OSError as e:
                    err = e.errno or errno.EIO
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                answer = self._judge(kind, err, address, attempt)
                if answer is not None:
                    out.answers.append(answer)
                elif err not in (errno.ETIMEDOUT, errno.EAGAIN):
                    out.failure = send_failure(OSError(err, ""))
                continue
            if kind == "tcp" and err == 0:  # connected at once (loopback)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
                sock.close()
                out.answers.append(Answer(address, True, "syn-ack", attempt))
                continue
            out.packets += 1
            fd = sock.fileno()
            self.socks[fd] = (sock, address, kind, attempt)
            self.by_host.setdefault(address, []).append(fd)
            if self.ep is not None:
                mask = select.EPOLLOUT if kind == "tcp" else select.EPOLLIN
                self.ep.register(fd, mask | select.EPOLLERR)
        return out

    @staticmethod
    def _judge(kind: str, err: int, address: str, attempt: int) -> Answer | None:
        if err == 0:
            return Answer(address, True, "syn-ack" if kind == "tcp" else "udp-response", attempt)
        if err == errno.ECONNREFUSED:
            return Answer(address, True, "reset" if kind == "tcp" else "port-unreach", attempt)
        if err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return Answer(address, False, send_failure(OSError(err, "")))
        return None

    def read(self, fd: int, events: int) -> list[Answer]:
        for v6, pinger in self.pingers.items():
            if pinger is not None and pinger.fileno() == fd:
                return self._echoes(pinger, v6)
        entry = self.socks.get(fd)
        if entry is None:
            return []
        sock, address, kind, attempt = entry
        if kind == "tcp":
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        else:
            try:
                sock.recv(2048)
                err = 0
            except BlockingIOError:
                return []
            except OSError as e:
                err = e.errno or errno.EIO
        if kind == "tcp" and err == 0:  # connected: leave with a reset, not a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
        self._close(fd)
        answer = self._judge(kind, err, address, attempt)
        return [] if answer is None else [answer]

    def _echoes(self, pinger: IcmpSocket, v6: bool) -> list[Answer]:
        answers = []
        for _ in range(4096):
            try:
                m, _stamp = pinger.receive()
            except BlockingIOError:
                break
            except OSError:
                continue
            if isinstance(m, icmp.Echo) and m.reply and m.payload[:8] == self.cookie:
                answers.append(Answer(m.source, True, "echo-reply", m.seq))
        return answers

    def _close(self, fd: int) -> None:
        entry = self.socks.pop(fd, None)
        if entry is None:
            return
        if self.ep is not None:
            with contextlib.suppress(OSError):
                self.ep.unregister(fd)
        entry[0].close()

    def forget(self, address: str) -> None:
        for fd in self.by_host.pop(address, []):
            self._close(fd)

    def close(self) -> None:
        for fd in list(self.socks):
            self._close(fd)
        for pinger in self.pingers.values():
            if pinger is not None:
                pinger.close()
