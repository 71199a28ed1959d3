"""nmap's data tables that the XML output names things by, and port range lists.

* service names by port (``/usr/share/nmap/nmap-services``: ``name  port/proto  frequency``),
  as nmap's ``<service name=... method="table" conf="3">`` gives them;
* MAC vendors by address prefix (``/usr/share/nmap/nmap-mac-prefixes``: ``OUI  Vendor``, with
  longer prefixes for the IEEE's smaller blocks);
* compact port lists (``1-21,23,80-81``), as ``scaninfo services`` and ``extrareasons ports``
  write them.

The parsers are pure; :func:`service_names` and :func:`mac_vendors` read the installed tables
once (empty when nmap is not installed: the XML then simply has no service names or vendors).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")
NMAP_MAC_PREFIXES = Path("/usr/share/nmap/nmap-mac-prefixes")
NMAP_XSL = Path("/usr/share/nmap/nmap.xsl")

_HEX = re.compile(r"[0-9A-Fa-f]{6,12}")


def parse_service_names(text: str) -> dict[tuple[int, str], str]:
    """``(port, proto) -> name`` from an nmap-services table; malformed lines are skipped."""
    names: dict[tuple[int, str], str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#"):
            continue
        port, _, proto = fields[1].partition("/")
        if not port.isdigit() or not proto or int(port) > 65535:
            continue
        # the first line for a port wins, as in nmap
        names.setdefault((int(port), proto.lower()), fields[0])
    return names


def parse_mac_prefixes(text: str) -> dict[str, str]:
    """``PREFIX -> vendor`` (upper-case hex, 6 to 12 digits) from an nmap-mac-prefixes table."""
    vendors: dict[str, str] = {}
    for line in text.splitlines():
        prefix, _, vendor = line.strip().partition(" ")
        if _HEX.fullmatch(prefix) and vendor.strip():
            vendors[prefix.upper()] = vendor.strip()
    return vendors


def vendor_of(mac: str, vendors: dict[str, str]) -> str | None:
    """The vendor of ``mac`` (any case, ``:`` or ``-`` separated): the longest prefix known."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", mac).upper()
    for length in range(min(len(digits), 12), 5, -1):
        vendor = vendors.get(digits[:length])
        if vendor is not None:
            return vendor
    return None


@functools.cache
def service_names(path: Path = NMAP_SERVICES) -> dict[tuple[int, str], str]:
    """The installed nmap-services table (empty when there is none)."""
    try:
        return parse_service_names(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


@functools.cache
def mac_vendors(path: Path = NMAP_MAC_PREFIXES) -> dict[str, str]:
    """The installed nmap-mac-prefixes table (empty when there is none)."""
    try:
        return parse_mac_prefixes(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def compact_ports(ports: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3,5"`` (sorted, duplicates dropped)."""
    parts: list[str] = []
    run: list[int] = []
    for port in sorted(set(ports)):
        if run and port == run[-1] + 1:
            run[-1] = port
            continue
        if run:
            parts.append(_run_text(run))
        run = [port, port]
    if run:
        parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    return str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}"


def expand_ports(text: str) -> list[int]:
    """``"1-3,5"`` -> ``[1, 2, 3, 5]``; raises ``ValueError`` on anything else."""
    ports: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", part, re.ASCII)
        if m is None:
            raise ValueError(f"{part!r} is not a port or a port range")
        first = int(m[1])
        last = int(m[2]) if m[2] else first
        if last > 65535 or first > last:
            raise ValueError(f"{part!r} is not a port range within 0-65535")
        ports.extend(range(first, last + 1))
    return ports
