"""An ICMP or ICMPv6 socket for sending echo requests and reading what comes back.

As root it is a raw socket: it sees every echo reply and ICMP error that reaches the host (a
kernel filter keeps out the other types), so the caller matches replies on its identifier and
payload. Without root it is an ICMP datagram ("ping") socket, which Linux allows to the groups
in ``net.ipv4.ping_group_range``: the kernel sets the identifier, hands over only the replies
to this socket, and reports no ICMP errors (none are read here). The TTL or hop limit of each
message is read from the packet's header (raw IPv4) or from ancillary data.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time

from stockade.errors import StockadeError
from stockade.sensors.scan import icmp
from stockade.sensors.scan.errqueue import SO_TIMESTAMPNS

_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33  # Linux; not exported by the socket module
_ANCILLARY = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(32)  # TTL and time stamp
_WANTED4 = (icmp.ECHO_REPLY4, icmp.UNREACH4, icmp.TIME_EXCEEDED4, icmp.PARAM_PROBLEM4)
_WANTED6 = (icmp.ECHO_REPLY6, icmp.UNREACH6, icmp.TIME_EXCEEDED6, icmp.PARAM_PROBLEM6)


class IcmpSocket:
    """One non-blocking ICMP (``v6`` False) or ICMPv6 socket; raw when ``privileged`` (None:
    raw as root, falling back to a datagram socket when raw sockets are refused)."""

    def __init__(self, *, v6: bool, privileged: bool | None = None, buffers: int = 0) -> None:
        self.v6 = v6
        family = socket.AF_INET6 if v6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
        want_raw = os.geteuid() == 0 if privileged is None else privileged
        self.raw = False
        sock: socket.socket | None = None
        if want_raw:
            try:
                sock = socket.socket(family, socket.SOCK_RAW, proto)
                self.raw = True
            except PermissionError:
                if privileged:
                    raise StockadeError(
                        "raw ICMP sockets need root (CAP_NET_RAW); run as root"
                    ) from None
        if sock is None:
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM, proto)
            except PermissionError:
                raise StockadeError(
                    "cannot open an ICMP socket: run as root, or put your group in "
                    "net.ipv4.ping_group_range (sysctl) for unprivileged ping sockets"
                ) from None
        self.sock = sock
        try:
            self._configure(buffers)
        except OSError:
            sock.close()
            raise

    def _configure(self, buffers: int) -> None:
        sock = self.sock
        sock.setblocking(False)
        if self.raw and self.v6:
            sock.setsockopt(socket.IPPROTO_ICMPV6, icmp.ICMP6_FILTER, icmp.icmp6_filter(_WANTED6))
        elif self.raw:
            sock.setsockopt(icmp.SOL_RAW, icmp.ICMP_FILTER, icmp.icmp4_filter(_WANTED4))
        if self.v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        elif not self.raw:
            sock.setsockopt(socket.IPPROTO_IP, icmp.IP_RECVTTL, 1)
        if self.raw:
            self.ident = secrets.randbits(16)
        else:  # the kernel's identifier for this socket is its "port"
            # every local address: replies come to whichever one the kernel sent from
            sock.bind(("::" if self.v6 else "0.0.0.0", 0))  # noqa: S104
            self.ident = int(sock.getsockname()[1])
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if buffers:
            for option in (_SO_SNDBUFFORCE, _SO_RCVBUFFORCE):
                with contextlib.suppress(OSError):  # needs root; the defaults do otherwise
                    sock.setsockopt(socket.SOL_SOCKET, option, buffers)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, address: str, seq: int, payload: bytes) -> None:
        """Send an echo request (raises OSError as ``sendto`` does)."""
        packet = icmp.echo_request(self.ident, seq & 0xFFFF, payload, v6=self.v6)
        self.sock.sendto(packet, (address, 0))

    def receive(self) -> tuple[icmp.Message | None, float]:
        """The next waiting message, parsed (None for one of no use: malformed, or not ICMP we
        read), and when it arrived (the kernel's time stamp, seconds since the epoch). Raises
        BlockingIOError when nothing is waiting."""
        data, ancdata, _flags, peer = self.sock.recvmsg(65535, _ANCILLARY)
        stamp = icmp.stamp_from_ancillary(ancdata) or time.time()
        try:
            if self.raw and not self.v6:
                return icmp.parse_ipv4(data), stamp
            source = str(peer[0]).partition("%")[0]
            ttl = icmp.ttl_from_ancillary(ancdata)
            return icmp.parse_icmp(data, source=source, ttl=ttl, v6=self.v6), stamp
        except ValueError:
            return None, stamp

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> IcmpSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
