"""Netlink sockets that say when the socket table is worth reading again.

:class:`SocketEvents` subscribes to program executions (the process connector, which the kernel
offers only in the first network namespace and only to root) and to destroyed sockets without
a peer (sock_diag, per namespace, root). What it could not open is said in
:attr:`SocketEvents.unavailable`; the schedule stays the check of last resort either way.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import time

from stockade.sensors.sockets.nlevents import (
    CN_IDX_PROC,
    DESTROY_GROUPS,
    NETLINK_CONNECTOR,
    NETLINK_SOCK_DIAG,
    count_execs,
    listen_request,
    unpeered_ports,
)

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
_RCVBUF = 1 << 20


class SocketEvents:
    def __init__(self) -> None:
        self.unavailable: list[str] = []
        self._socks: dict[int, tuple[str, socket.socket]] = {}
        for kind, opener in (("exec", self._open_proc), ("destroy", self._open_destroy)):
            try:
                s = opener()
            except OSError as e:
                self.unavailable.append(f"{kind} events ({e.strerror or e})")
                continue
            self._socks[s.fileno()] = (kind, s)

    @staticmethod
    def _socket(protocol: int) -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, protocol)
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        return s

    def _open_proc(self) -> socket.socket:
        s = self._socket(NETLINK_CONNECTOR)
        try:
            s.bind((0, CN_IDX_PROC))
            s.send(listen_request(s.getsockname()[0]))
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def _open_destroy(self) -> socket.socket:
        s = self._socket(NETLINK_SOCK_DIAG)
        try:
            s.bind((0, 0))
            for group in DESTROY_GROUPS:
                s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def filenos(self) -> list[int]:
        return list(self._socks)

    def read(self, fd: int) -> bool:
        """Drain the socket ``fd``; True if what it said is worth a check (an execution, a
        destroyed listener, or lost events)."""
        kind, s = self._socks[fd]
        worth = False
        while True:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                return worth
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped events: assume the worst
                    worth = True
                    continue
                raise
            if kind == "exec":
                worth = worth or count_execs(data) > 0
            else:
                worth = worth or bool(unpeered_ports(data))

    def wait(self, timeout: float) -> bool:
        """Block until an event worth a check arrives (True) or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(self.filenos(), [], [], left)
            if any([self.read(fd) for fd in ready]):
                return True
        return False

    def close(self) -> None:
        for _, s in self._socks.values():
            s.close()
        self._socks = {}
