"""What changed on the network between two scans: hosts new, down or back, ports opened or
closed, banners, service versions and certificates changed, certificates close to expiry,
paths changed.

Scans are compared as *snapshots*: per host only what a baseline keeps (state, MAC, open ports
with their banner and certificate, the path), keyed by address; with ``key_by_mac`` a host of
the local link that now answers at another address with the same MAC address is the same host
(a DHCP lease that moved is not a new host and an old one down). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from stockade.sensors.scan.certs import cert_changes
from stockade.sensors.scan.certs import expiring as expires_within
from stockade.sensors.scan.report import UP, Cert, Hop, HostReport, PortReport, Service

HOST_NEW, HOST_DOWN, HOST_UP = "host-new", "host-down", "host-up"
PORT_OPENED, PORT_CLOSED = "port-opened", "port-closed"
BANNER_CHANGED, CERT_CHANGED, CERT_EXPIRING = "banner-changed", "cert-changed", "cert-expiring"
PATH_CHANGED, VERSION_CHANGED = "path-changed", "version-changed"
KINDS = (
    HOST_NEW,
    HOST_DOWN,
    HOST_UP,
    PORT_OPENED,
    PORT_CLOSED,
    BANNER_CHANGED,
    VERSION_CHANGED,
    CERT_CHANGED,
    CERT_EXPIRING,
    PATH_CHANGED,
)


def host_key(report: HostReport) -> str:
    return "ip:" + report.address


def snapshot(report: HostReport) -> HostReport:
    """What a baseline keeps of ``report``: open ports only, no timings."""
    return HostReport(
        address=report.address,
        name=report.name,
        state=report.state,
        reason=report.reason,
        mac=report.mac,
        ports=[p for p in report.ports if p.state == "open"],
        path=report.path,
    )


def snapshots(reports: Iterable[HostReport]) -> dict[str, HostReport]:
    return {host_key(r): snapshot(r) for r in reports}


def moved(base: Mapping[str, HostReport], current: Mapping[str, HostReport]) -> dict[str, str]:
    """Hosts of the local link that answer at another address than in ``base``: the current
    key of each mapped to its base key, matched by MAC address. Only a host that is up now where
    nothing was up before is matched with one that was up before and is not now, so aliases
    (several addresses on one interface) stay apart."""
    gone: dict[str, list[str]] = {}
    for k, old in base.items():
        now = current.get(k)
        if old.state == UP and old.mac and (now is None or now.state != UP):
            gone.setdefault(old.mac.lower(), []).append(k)
    out: dict[str, str] = {}
    for k, cur in current.items():
        before = base.get(k)
        if cur.state == UP and cur.mac and (before is None or before.state != UP):
            candidates = gone.get(cur.mac.lower())
            if candidates:
                out[k] = candidates.pop(0)
    return out


@dataclass(frozen=True, slots=True)
class Delta:
    kind: str
    key: str  # the host's key (mac:… or ip:…)
    address: str
    port: int | None = None
    proto: str | None = None
    old: str | None = None
    new: str | None = None

    @property
    def subject(self) -> str:
        if self.port is None:
            return self.address
        return f"{self.address}:{self.port}/{self.proto}"

    @property
    def identity(self) -> tuple[str, str, int | None, str | None, str | None]:
        """What makes two deltas the same change (a retry confirms a delta of equal identity)."""
        return (self.kind, self.key, self.port, self.proto, self.new)

    def describe(self) -> str:
        s = self.subject
        return {
            HOST_NEW: f"new host {s}" + (f" with open ports {self.new}" if self.new else ""),
            HOST_DOWN: f"host {s} is down (it answered before)",
            HOST_UP: f"host {s} is up again",
            PORT_OPENED: f"port {s} is now open",
            PORT_CLOSED: f"port {s} is no longer open",
            BANNER_CHANGED: f"banner of {s} changed: {self.old!r} -> {self.new!r}",
            VERSION_CHANGED: f"service of {s} changed: {self.old} -> {self.new}",
            CERT_CHANGED: f"TLS certificate of {s} changed: {self.old} -> {self.new}",
            CERT_EXPIRING: f"TLS certificate of {s} expires {self.new} ({self.old})",
            PATH_CHANGED: f"path to {s} changed: {self.old} -> {self.new}",
        }[self.kind]

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "key": self.key,
            "address": self.address,
            "port": self.port,
            "proto": self.proto,
            "old": self.old,
            "new": self.new,
            "message": self.describe(),
        }


def _cert_text(c: Cert) -> str:
    return f"{c.subject} (sha256 {c.sha256[:16]}…, until {c.not_after})"


def path_text(path: list[Hop]) -> str:
    return " ".join(h.address or "*" for h in path)


def path_differs(old: list[Hop], new: list[Hop]) -> bool:
    """Two paths differ when they reach the host at another distance, or a hop that answered
    in both has another address. A hop silent in one of them is no change: one lost probe must
    not look like a new route."""
    if not old or not new:
        return False
    if len(old) != len(new):
        return True
    return any(
        a.address and b.address and a.address != b.address for a, b in zip(old, new, strict=True)
    )


def version_changed(was: Service | None, now: Service | None) -> bool:
    """Another service, product or version was detected (both scans told a product or
    version: a scan that named the service only, when a probe went unanswered, is no change).
    Such a change is one ``version-changed`` delta; the banner, which then changed with it, is
    not reported again."""
    if was is None or now is None:
        return False
    if not (was.product or was.version) or not (now.product or now.version):
        return False
    return (was.name, was.product, was.version) != (now.name, now.product, now.version)


def _port_deltas(key: str, address: str, old: HostReport, new: HostReport) -> list[Delta]:
    out: list[Delta] = []
    before = {(p.proto, p.port): p for p in old.ports if p.state == "open"}
    for p in new.ports:
        if p.state != "open":
            continue
        was = before.pop((p.proto, p.port), None)
        if was is None:
            out.append(Delta(PORT_OPENED, key, address, p.port, p.proto, None, "open"))
            continue
        out += _fact_deltas(key, address, was, p)
    for proto, port in sorted(before):
        out.append(Delta(PORT_CLOSED, key, address, port, proto, "open", "not open"))
    return out


def _fact_deltas(key: str, address: str, was: PortReport, now: PortReport) -> list[Delta]:
    out = []
    if version_changed(was.service, now.service):
        assert was.service is not None and now.service is not None
        old, new = was.service.describe(), now.service.describe()
        out.append(Delta(VERSION_CHANGED, key, address, now.port, now.proto, old, new))
    elif was.banner is not None and now.banner is not None and was.banner != now.banner:
        out.append(Delta(BANNER_CHANGED, key, address, now.port, now.proto, was.banner, now.banner))
    if was.cert is not None and now.cert is not None and was.cert.sha256 != now.cert.sha256:
        what = ", ".join(c for c in cert_changes(was.cert, now.cert) if c != "fingerprint")
        new = _cert_text(now.cert) + (f"; also changed: {what}" if what else "")
        out.append(
            Delta(CERT_CHANGED, key, address, now.port, now.proto, _cert_text(was.cert), new)
        )
    return out


def compare(
    base: Mapping[str, HostReport], current: Mapping[str, HostReport], key_by_mac: bool = True
) -> list[Delta]:
    """The deltas from ``base`` to ``current`` (both keyed snapshots). With ``key_by_mac``, a
    host that moved to another address on the local link is the same host (see :func:`moved`)."""
    out: list[Delta] = []
    pairs = moved(base, current) if key_by_mac else {}
    taken = set(pairs.values())
    for key, cur in current.items():
        if key in taken and cur.state != UP:
            continue  # its host answers at another address now
        old = base.get(pairs.get(key, key))
        if old is None or old.state != UP:
            if cur.state == UP:
                kind = HOST_NEW if old is None else HOST_UP
                ports = ",".join(f"{p.port}/{p.proto}" for p in cur.open_ports())
                out.append(Delta(kind, key, cur.address, new=ports or None))
            continue
        if cur.state != UP:
            out.append(Delta(HOST_DOWN, key, cur.address, old=UP, new=cur.state))
            continue
        out += _port_deltas(key, cur.address, old, cur)
        if old.path and cur.path and path_differs(old.path, cur.path):
            out.append(
                Delta(
                    PATH_CHANGED, key, cur.address, old=path_text(old.path), new=path_text(cur.path)
                )
            )
    for key, old in base.items():
        if key not in current and key not in taken and old.state == UP:
            out.append(Delta(HOST_DOWN, key, old.address, old=UP, new="not seen"))
    return out


def expiring(current: Mapping[str, HostReport], now: datetime, days: int) -> list[Delta]:
    """A delta for every certificate in ``current`` that expires within ``days`` (or has)."""
    out = []
    for key, host in current.items():
        if host.state != UP:
            continue
        for p in host.ports:
            if p.cert is None:
                continue
            try:
                soon = expires_within(p.cert, now, days)
            except ValueError:
                continue  # a date that does not parse: nothing to say about it
            if soon:
                until = datetime.fromisoformat(p.cert.not_after.replace("Z", "+00:00"))
                until = until if until.tzinfo else until.replace(tzinfo=UTC)
                left = until - now
                when = "expired" if left.total_seconds() <= 0 else f"in {left.days} days"
                out.append(
                    Delta(
                        CERT_EXPIRING,
                        key,
                        host.address,
                        p.port,
                        p.proto,
                        f"{p.cert.subject}, sha256 {p.cert.sha256[:16]}…, {when}",
                        p.cert.not_after,
                    )
                )
    return out
