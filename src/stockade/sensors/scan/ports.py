"""Port lists in nmap's syntax: ``22,80,8000-8100``, ``-`` (all), ``-1024``, ``60000-``,
``T:22,U:53`` protocol prefixes, and ``top100``/``top1000`` (by nmap's frequency table when
nmap is installed, else a bundled list of the 100 most frequent).

Parsing is pure; :func:`top_ports` reads /usr/share/nmap/nmap-services when it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stockade.errors import StockadeError

NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")

#: The 100 most frequently open ports in nmap's published frequency table (a fact, used when
#: nmap's own table is not installed).
TOP100_TCP = (
    7, 9, 13, 21, 22, 23, 25, 26, 37, 53, 79, 80, 81, 88, 106, 110, 111, 113, 119, 135, 139,
    143, 144, 179, 199, 389, 427, 443, 444, 445, 465, 513, 514, 515, 543, 544, 548, 554, 587,
    631, 646, 873, 990, 993, 995, 1025, 1026, 1027, 1028, 1029, 1110, 1433, 1720, 1723, 1755,
    1900, 2000, 2001, 2049, 2121, 2717, 3000, 3128, 3306, 3389, 3986, 4899, 5000, 5009, 5051,
    5060, 5101, 5190, 5357, 5432, 5631, 5666, 5800, 5900, 6000, 6001, 6646, 7070, 8000, 8008,
    8009, 8080, 8081, 8443, 8888, 9100, 9999, 10000, 32768, 49152, 49153, 49154, 49155, 49156,
    49157,
)  # fmt: skip
TOP100_UDP = (
    7, 9, 17, 19, 49, 53, 67, 68, 69, 80, 88, 111, 120, 123, 135, 136, 137, 138, 139, 158, 161,
    162, 177, 427, 443, 445, 497, 500, 514, 515, 518, 520, 593, 623, 626, 631, 996, 997, 998,
    999, 1022, 1023, 1025, 1026, 1027, 1028, 1029, 1030, 1433, 1434, 1645, 1646, 1701, 1718,
    1719, 1812, 1813, 1900, 2000, 2048, 2049, 2222, 2223, 3283, 3456, 3703, 4444, 4500, 5000,
    5060, 5353, 5632, 9200, 10000, 17185, 20031, 30718, 31337, 32768, 32769, 32771, 32815,
    33281, 49152, 49153, 49154, 49156, 49181, 49182, 49186, 49188, 49190, 49191, 49192, 49193,
    49194, 49200, 49201, 49211, 65024,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PortSpec:
    tcp: tuple[int, ...]
    udp: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.tcp) + len(self.udp)


def parse_services(text: str, proto: str, count: int) -> list[int]:
    """The ``count`` most frequent ports of ``proto`` in an nmap-services table."""
    rows: list[tuple[float, int]] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 3 or f[0].startswith("#"):
            continue
        port, _, p = f[1].partition("/")
        try:
            if p == proto:
                rows.append((float(f[2]), int(port)))
        except ValueError:
            continue
    rows.sort(key=lambda r: (-r[0], r[1]))
    return sorted(p for _, p in rows[:count])


def top_ports(proto: str, count: int) -> list[int]:
    try:
        text = NMAP_SERVICES.read_text(errors="replace")
    except OSError:
        text = ""
    ports = parse_services(text, proto, count) if text else []
    if len(ports) >= min(count, 100):
        return ports
    bundled = TOP100_TCP if proto == "tcp" else TOP100_UDP
    if count > len(bundled):
        raise StockadeError(
            f"top{count}: needs nmap's frequency table ({NMAP_SERVICES}); install nmap "
            "or use top100"
        )
    return list(bundled[:count]) if count == 100 else sorted(bundled[:count])


def _range(item: str, what: str) -> Iterable[int]:
    lo_text, sep, hi_text = item.partition("-")
    try:
        lo = int(lo_text) if lo_text else 1
        hi = (int(hi_text) if hi_text else 65535) if sep else lo
    except ValueError:
        raise StockadeError(
            f"{what}: {item!r} is not a port or a range; write 22, 8000-8100, -1024 or -"
        ) from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise StockadeError(f"{what}: {item!r}: ports are 0-65535")
    if lo > hi:
        raise StockadeError(f"{what}: {item!r}: the range is reversed")
    return range(lo, hi + 1)


def parse_ports(text: str, *, default_proto: str = "tcp", what: str = "-p") -> PortSpec:
    """Parse a port list; items after ``U:`` are UDP, after ``T:`` TCP, until the next prefix."""
    sets: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    proto = default_proto
    if not text.strip():
        raise StockadeError(f"{what}: empty port list; write 22,80, 1-1024 or - for all")
    for raw in text.split(","):
        item = raw.strip()
        if item[:2].upper() in ("T:", "U:"):
            proto = "tcp" if item[0].upper() == "T" else "udp"
            item = item[2:]
        if not item:
            raise StockadeError(f"{what}: {text!r} has an empty item")
        if item.lower().startswith("top"):
            try:
                count = int(item[3:])
            except ValueError:
                raise StockadeError(f"{what}: {item!r}: write top100 or top1000") from None
            if not 1 <= count <= 65535:
                raise StockadeError(f"{what}: {item!r}: the count must be 1-65535")
            sets[proto].update(top_ports(proto, count))
            continue
        sets[proto].update(_range(item, what))
    return PortSpec(tuple(sorted(sets["tcp"])), tuple(sorted(sets["udp"])))
