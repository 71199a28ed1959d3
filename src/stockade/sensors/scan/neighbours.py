"""MAC addresses of hosts on a directly connected link, from the kernel's neighbour table.

After a host has answered on the local link, the kernel holds its link-layer address: for IPv4
in ``/proc/net/arp``, for IPv6 in the neighbour table ``ip -j -6 neigh`` prints. A host routed
through a gateway has no entry of its own (the gateway's is keyed by the gateway's address), so
looking the target's address up finds only on-link hosts. Only complete entries count
(``/proc/net/arp`` flag ATF_COM; for IPv6 not INCOMPLETE or FAILED), and only Ethernet-style
six-octet addresses. With the MAC a host keeps its identity across DHCP address changes.

The parsers are pure and never raise on odd input (malformed lines are skipped); the look-ups
read the table of the network namespace the process runs in.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

PROC_ARP = Path("/proc/net/arp")
_ATF_COM = 0x02  # the entry is complete
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_ZERO = "00:00:00:00:00:00"
_NOT_RESOLVED = {"INCOMPLETE", "FAILED", "NONE"}


def _canonical(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return None


def _mac(text: str) -> str | None:
    mac = text.strip().lower()
    return mac if _MAC.fullmatch(mac) and mac != _ZERO else None


def parse_proc_arp(text: str) -> dict[str, str]:
    """``address -> mac`` for the complete entries of ``/proc/net/arp``'s text.

    The table: a header line, then ``IP  HW-type  Flags  HW-address  Mask  Device`` per entry.
    """
    found: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        address, mac = _canonical(fields[0]), _mac(fields[3])
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        if address and mac and ":" not in address and flags & _ATF_COM:
            found[address] = mac
    return found


def parse_ip_neigh(text: str) -> dict[str, str]:
    """``address -> mac`` for the resolved entries of ``ip -j neigh``'s JSON."""
    try:
        rows: Any = json.loads(text)
    except ValueError:
        return {}
    found: dict[str, str] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        dst, lladdr, state = row.get("dst"), row.get("lladdr"), row.get("state", [])
        if not isinstance(dst, str) or not isinstance(lladdr, str):
            continue
        states = {s for s in state if isinstance(s, str)} if isinstance(state, list) else set()
        address, mac = _canonical(dst), _mac(lladdr)
        if address and mac and not states & _NOT_RESOLVED:
            found[address] = mac
    return found


def read_ipv6_neighbours() -> dict[str, str]:
    """The IPv6 neighbour table of this namespace (empty without iproute2)."""
    ip = shutil.which("ip")
    if ip is None:
        return {}
    try:
        done = subprocess.run(
            [ip, "-j", "-6", "neigh", "show"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_ip_neigh(done.stdout) if done.returncode == 0 else {}


def read_ipv4_neighbours(path: Path = PROC_ARP) -> dict[str, str]:
    try:
        return parse_proc_arp(path.read_text(encoding="ascii", errors="replace"))
    except OSError:
        return {}


def neighbour_mac(address: str) -> str | None:
    """The MAC of ``address`` when it is a resolved neighbour on a local link, else None."""
    canonical = _canonical(address)
    if canonical is None:
        return None
    table = read_ipv6_neighbours() if ":" in canonical else read_ipv4_neighbours()
    return table.get(canonical)
