"""One scan of one host, stage after stage, into a :class:`~.report.HostReport`.

The stages: host discovery (unless ``discovery`` is ``none``; :func:`scan_hosts` runs it over
all targets at once before any port scan, as nmap does), the TCP port scan (SYN as root,
else connect), the UDP port scan, banners, TLS certificates, services and versions of open TCP
ports, the path
(traceroute), and the MAC address of a host that answered on a local link (from the kernel's
neighbour table, which the scan's own traffic filled). :class:`ScanOptions` says which stages
run and how; it is plain data, so a work unit can carry it to another process or host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stockade.sensors.scan.neighbours import neighbour_mac
from stockade.sensors.scan.report import DOWN, UP, HostReport, PortReport
from stockade.sensors.scan.targets import Target
from stockade.sensors.scan.tls import TLS_PORTS

if TYPE_CHECKING:
    from stockade.sensors.scan.connect import Timing


@dataclass
class ScanOptions:
    tcp: list[int] = field(default_factory=list)
    udp: list[int] = field(default_factory=list)
    method: str = "auto"  # auto (SYN as root, else connect) | syn | connect
    # none (-Pn: every host is taken as up) | auto (what nmap does by default: raw probes as
    # root, else connect()) | raw | connect
    discovery: str = "none"
    retries: int = 2
    rate: int = 0
    banners: bool = False  # banners and TLS certificates of open TCP ports (-sV)
    tls_ports: list[int] = field(default_factory=lambda: list(TLS_PORTS))
    starttls_ports: dict[str, list[int]] = field(default_factory=dict)  # protocol → more ports
    traceroute: bool = False
    version_intensity: int = 7  # with banners: further probes of rarity up to this (0: none)

    @property
    def use_syn(self) -> bool:
        return self.method == "syn" or (self.method == "auto" and os.geteuid() == 0)


def discover_hosts(targets: Sequence[Target], opts: ScanOptions) -> list[HostReport]:
    """The discovery stage for all ``targets`` at once: one report per target with its state
    (every host up, ``user-set``, when discovery is ``none``)."""
    if opts.discovery == "none":
        return [HostReport(t.address, t.name or None, UP, "user-set") for t in targets]
    from stockade.sensors.scan.discovery import discover

    privileged = None if opts.discovery == "auto" else opts.discovery == "raw"
    return discover(targets, retries=opts.retries, privileged=privileged, rate=opts.rate)


def scan_host(target: Target, opts: ScanOptions, found: HostReport | None = None) -> HostReport:
    """Scan one host; ``found`` is its report from :func:`discover_hosts` (when None, the host
    is discovered here first). A host found down is not port-scanned."""
    from stockade.sensors.scan.connect import Timing, connect_scan
    from stockade.sensors.scan.syn import syn_scan
    from stockade.sensors.scan.udp import udp_scan

    report = found if found is not None else discover_hosts([target], opts)[0]
    if report.state != UP:
        return report
    start = time.monotonic()
    timing = Timing()
    if report.rtt is not None:  # as nmap: the discovery's round trip seeds the time-outs
        timing.sample(report.rtt)
    reasons: list[str] = []  # what answered, strongest first
    if opts.tcp:
        scanner = syn_scan if opts.use_syn else connect_scan
        r = scanner(target.address, opts.tcp, retries=opts.retries, rate=opts.rate, timing=timing)
        report.ports += [PortReport(p, "tcp", s) for p, s in sorted(r.ports.items())]
        answered = [s for s in r.ports.values() if s != "filtered"]
        if answered:
            reasons.append("syn-ack" if "open" in answered else "reset")
        if opts.banners:
            _service_facts(report, target, opts, r.timing)
    if opts.udp:
        u = udp_scan(target.address, opts.udp, retries=opts.retries, rate=opts.rate)
        report.ports += [PortReport(p, "udp", s) for p, s in sorted(u.ports.items())]
        states = set(u.ports.values())
        if "open" in states:
            reasons.append("udp-response")
        elif "closed" in states:
            reasons.append("port-unreach")
    if reasons and report.reason == "user-set":
        report.reason = reasons[0]
    elif not reasons and (opts.tcp or opts.udp) and opts.discovery == "none":
        report.state, report.reason = DOWN, "no-response"
    if report.state == UP:
        report.mac = neighbour_mac(target.address)
        if opts.traceroute:
            from stockade.sensors.scan.traceroute import trace

            report.path = trace(target.address)
    report.elapsed += time.monotonic() - start
    return report


def _service_facts(report: HostReport, target: Target, opts: ScanOptions, timing: Timing) -> None:
    from stockade.sensors.scan.facts import service_facts

    open_tcp = report.open_ports("tcp")
    found = service_facts(
        target.address,
        [p.port for p in open_tcp],
        name=target.name,
        tls_ports=opts.tls_ports,
        starttls_ports=opts.starttls_ports,
        timing=timing,
        rate=opts.rate,
        intensity=opts.version_intensity,
    )
    for p in open_tcp:
        if p.port in found:
            f = found[p.port]
            p.banner, p.cert, p.service = f.banner, f.cert, f.service


def scan_hosts(
    targets: Sequence[Target], opts: ScanOptions, found: Sequence[HostReport] | None = None
) -> Iterator[HostReport]:
    """Scan every target; discovery runs first over all of them (unless ``found`` already
    holds its reports, in the order of ``targets``), then each host found up is scanned."""
    reports = list(found) if found is not None else discover_hosts(targets, opts)
    for t, report in zip(targets, reports, strict=True):
        yield scan_host(t, opts, report)
