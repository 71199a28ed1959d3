"""The ``ADDR:PORT`` a dashboard listens on: parsed without I/O."""

from __future__ import annotations

import ipaddress


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8470``, ``[::1]:8470`` or ``:8470`` (loopback) → (address, port).

    Raises ValueError saying what is wrong; host names are refused so that the address bound
    is the address configured."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected ADDR:PORT, for instance 127.0.0.1:8470")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets: [::1]:8470")
    host = host or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number 0-65535")
    return host, int(port_text)
