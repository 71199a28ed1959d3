"""What a scan found about one host, as plain data: the host's state, its ports (with banner, TLS
certificate, service and version where found) and the path to it.

Every scanner stage (discovery, TCP and UDP port scans, banners, certificates, traceroute) fills
in part of a :class:`HostReport`; the CLI prints it, ``--json`` writes :meth:`HostReport.to_json`
(the documented JSON), the store keeps it and the baseline compares two of them. ``from_json``
reads back what ``to_json`` wrote (and raises ``ValueError`` on anything else), so a report can
cross a process or host boundary as a work unit's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UP, DOWN = "up", "down"
SERVICE_FIELDS = ("product", "version", "extrainfo", "hostname", "ostype", "devicetype")


@dataclass
class Cert:
    """A TLS certificate as a scan saw it (the leaf), with the chain the server sent."""

    subject: str
    issuer: str
    sans: list[str]
    not_before: str  # ISO 8601, UTC
    not_after: str
    sha256: str  # hex, lower case, of the DER
    chain: list[dict[str, str]] = field(default_factory=list)  # subject, issuer, sha256, not_after
    tls_via: str = ""  # the in-protocol upgrade it came after (smtp, imap …); "": direct TLS

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": list(self.sans),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "sha256": self.sha256,
            "chain": [dict(c) for c in self.chain],
        }
        if self.tls_via:
            d["tls_via"] = self.tls_via
        return d

    @classmethod
    def from_json(cls, d: Any) -> Cert:
        _need_dict(d, "certificate")
        return cls(
            subject=_str(d, "subject"),
            issuer=_str(d, "issuer"),
            sans=[str(s) for s in _list(d, "sans")],
            not_before=_str(d, "not_before"),
            not_after=_str(d, "not_after"),
            sha256=_str(d, "sha256"),
            chain=[{str(k): str(v) for k, v in _dict(c).items()} for c in _list(d, "chain")],
            tls_via=str(d.get("tls_via", "")),
        )


@dataclass
class Service:
    """What a match says about a service (``soft``: the name only, from a ``softmatch``)."""

    name: str
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    hostname: str = ""
    ostype: str = ""
    devicetype: str = ""
    cpe: list[str] = field(default_factory=list)
    soft: bool = False  # not kept in JSON

    def describe(self) -> str:
        """As nmap's table says it: ``ssh OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)``."""
        words = [self.name, self.product, self.version]
        if self.extrainfo:
            words.append(f"({self.extrainfo})")
        return " ".join(w for w in words if w)

    def to_json(self) -> dict[str, Any]:
        """The port's JSON keys: ``service``, then the non-empty fields, ``cpe`` a list."""
        d: dict[str, Any] = {"service": self.name}
        for key in SERVICE_FIELDS:
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.cpe:
            d["cpe"] = list(self.cpe)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Service:
        """The service in a port's JSON object (``d["service"]`` is set)."""
        fields = {k: str(d[k]) for k in SERVICE_FIELDS if d.get(k) is not None}
        return cls.of(_str(d, "service"), fields, [str(c) for c in _list(d, "cpe")])

    @classmethod
    def of(cls, name: str, fields: dict[str, str], cpe: list[str]) -> Service:
        """A service from its :data:`SERVICE_FIELDS` (missing ones empty)."""
        g = fields.get
        return cls(
            name, g("product", ""), g("version", ""), g("extrainfo", ""), g("hostname", ""),
            g("ostype", ""), g("devicetype", ""), cpe,
        )  # fmt: skip


@dataclass
class PortReport:
    port: int
    proto: str  # tcp | udp
    state: str  # open | closed | filtered | open|filtered
    banner: str | None = None
    cert: Cert | None = None
    service: Service | None = None  # what version detection found

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"port": self.port, "proto": self.proto, "state": self.state}
        if self.service is not None:
            d.update(self.service.to_json())
        if self.banner is not None:
            d["banner"] = self.banner
        if self.cert is not None:
            d["certificate"] = self.cert.to_json()
        return d

    @classmethod
    def from_json(cls, d: Any) -> PortReport:
        _need_dict(d, "port")
        cert = d.get("certificate")
        banner = d.get("banner")
        return cls(
            port=_int(d, "port"),
            proto=_str(d, "proto"),
            state=_str(d, "state"),
            banner=None if banner is None else str(banner),
            cert=None if cert is None else Cert.from_json(cert),
            service=None if d.get("service") is None else Service.from_json(d),
        )


@dataclass
class Hop:
    """One TTL of a traceroute: who answered (None: nobody) and each probe's RTT in seconds.

    Per probe, when known: who answered it (``responders``; another router than ``address``
    where the path splits) and traceroute's mark for an unreachable (``marks``: "", "!H" …).
    JSON carries them only when they add something."""

    ttl: int
    address: str | None
    rtts: list[float | None] = field(default_factory=list)
    responders: list[str | None] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ttl": self.ttl, "address": self.address, "rtts": list(self.rtts)}
        if any(r not in (None, self.address) for r in self.responders):
            d["responders"] = list(self.responders)
        if any(self.marks):
            d["marks"] = list(self.marks)
        return d

    @classmethod
    def from_json(cls, d: Any) -> Hop:
        _need_dict(d, "hop")
        addr = d.get("address")
        return cls(
            ttl=_int(d, "ttl"),
            address=None if addr is None else str(addr),
            rtts=[None if r is None else float(r) for r in _list(d, "rtts")],
            responders=[None if r is None else str(r) for r in _list(d, "responders")],
            marks=[str(m) for m in _list(d, "marks")],
        )


@dataclass
class HostReport:
    address: str
    name: str | None = None
    state: str = DOWN
    reason: str = ""  # what showed the state: echo-reply, syn-ack, reset, no-response, user-set …
    rtt: float | None = None  # seconds, of the answer that showed the host up
    mac: str | None = None  # on the local link
    ports: list[PortReport] = field(default_factory=list)
    path: list[Hop] | None = None
    elapsed: float = 0.0

    def port(self, port: int, proto: str = "tcp") -> PortReport | None:
        for p in self.ports:
            if p.port == port and p.proto == proto:
                return p
        return None

    def open_ports(self, proto: str | None = None) -> list[PortReport]:
        return [p for p in self.ports if p.state == "open" and proto in (None, p.proto)]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "address": self.address,
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "rtt": None if self.rtt is None else round(self.rtt, 6),
            "mac": self.mac,
            "elapsed": round(self.elapsed, 3),
            "ports": [p.to_json() for p in sorted(self.ports, key=_port_order)],
        }
        if self.path is not None:
            d["path"] = [h.to_json() for h in self.path]
        return d

    @classmethod
    def from_json(cls, d: Any) -> HostReport:
        _need_dict(d, "host")
        path = d.get("path")
        rtt = d.get("rtt")
        name, mac = d.get("name"), d.get("mac")
        return cls(
            address=_str(d, "address"),
            name=None if name is None else str(name),
            state=_str(d, "state"),
            reason=str(d.get("reason", "")),
            rtt=None if rtt is None else float(rtt),
            mac=None if mac is None else str(mac),
            ports=[PortReport.from_json(p) for p in _list(d, "ports")],
            path=None if path is None else [Hop.from_json(h) for h in _list(d, "path")],
            elapsed=float(d.get("elapsed", 0.0)),
        )


def _port_order(p: PortReport) -> tuple[str, int]:
    return (p.proto, p.port)


def _need_dict(d: Any, what: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{what}: expected an object, got {type(d).__name__}")


def _dict(d: Any) -> dict[Any, Any]:
    _need_dict(d, "chain entry")
    return dict(d)


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise ValueError(f"{key!r}: expected a string")
    return v


def _int(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{key!r}: expected an integer")
    return v


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key, [])
    if not isinstance(v, list):
        raise ValueError(f"{key!r}: expected a list")
    return v
