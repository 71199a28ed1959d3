"""``HOST:PORT`` as written in the configuration (``[::1]:6514`` for IPv6)."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$")
_PLAIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?::(\d+))?$")


def parse_host_port(text: str, default_port: int | None) -> tuple[str, int]:
    """Split ``text``; raise ValueError (with the fix) when it is malformed."""
    m = _BRACKETED.match(text.strip()) or _PLAIN.match(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not HOST:PORT; write for example 192.0.2.7:514 or [2001:db8::7]:6514"
        )
    host, port = m.group(1), m.group(2)
    if port is None:
        if default_port is None:
            raise ValueError(f"{text!r}: give the port, as HOST:PORT")
        return host, default_port
    if not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: port {port} is not in 1-65535")
    return host, int(port)
