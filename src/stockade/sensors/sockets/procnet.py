"""Parse the kernel's socket tables (/proc/net/tcp, tcp6, udp, udp6): text in, records out.

No I/O here; :mod:`stockade.sensors.sockets.table` reads the files and joins each socket's
inode to the processes holding it. State names are those ``ss`` prints.
"""

from __future__ import annotations

import ipaddress
import string
import sys
from dataclasses import dataclass

from stockade.errors import StockadeError

TCP_STATES = {
    1: "ESTAB",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW-SYN-RECV",
}


@dataclass(frozen=True, slots=True)
class RawSocket:
    """One line of a /proc/net table."""

    proto: str  # tcp or udp
    family: int  # 4 or 6
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: str
    send_q: int
    recv_q: int
    uid: int
    inode: int

    @property
    def listening(self) -> bool:
        return self.state == "LISTEN" or (self.proto == "udp" and self.state == "UNCONN")


def _address(text: str, family: int) -> str:
    raw = bytes.fromhex(text)
    if family == 4:
        if len(raw) != 4:
            raise ValueError("IPv4 address must be 8 hex digits")
        return str(ipaddress.IPv4Address(raw[::-1] if sys.byteorder == "little" else raw))
    if len(raw) != 16:
        raise ValueError("IPv6 address must be 32 hex digits")
    if sys.byteorder == "little":  # four 32-bit words, each in host order
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    ip = ipaddress.IPv6Address(raw)
    return f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped else str(ip)  # as ss prints it


def _endpoint(text: str, family: int, cache: dict[str, str]) -> tuple[str, int]:
    addr, sep, port = text.partition(":")
    if not sep:
        raise ValueError(f"endpoint {text!r} has no ':'")
    if len(port) != 4 or not all(c in string.hexdigits for c in port):
        raise ValueError(f"port {port!r} must be 4 hex digits")
    name = cache.get(addr)
    if name is None:
        name = cache[addr] = _address(addr, family)
    return name, int(port, 16)


def parse_table(text: str, proto: str, family: int, *, source: str = "") -> list[RawSocket]:
    """Parse one /proc/net/{tcp,udp}[6] file. A malformed line raises StockadeError naming
    ``source`` and the line number."""
    out: list[RawSocket] = []
    cache: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == "sl":
            continue
        try:
            if len(fields) < 10:
                raise ValueError(f"{len(fields)} fields, expected at least 10")
            laddr, lport = _endpoint(fields[1], family, cache)
            raddr, rport = _endpoint(fields[2], family, cache)
            code = int(fields[3], 16)
            state = TCP_STATES.get(code, f"UNKNOWN-{code}")
            if proto == "udp" and code == 1:
                state = "ESTAB"
            tx, _, rx = fields[4].partition(":")
            out.append(
                RawSocket(
                    proto=proto,
                    family=family,
                    local_address=laddr,
                    local_port=lport,
                    remote_address=raddr,
                    remote_port=rport,
                    state=state,
                    send_q=int(tx, 16),
                    recv_q=int(rx, 16),
                    uid=int(fields[7]),
                    inode=int(fields[9]),
                )
            )
        except ValueError as e:
            raise StockadeError(
                f"{source or proto}:{n}: cannot read socket line ({e}); "
                "is this a /proc/net socket table?"
            ) from None
    return out
