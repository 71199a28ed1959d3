"""One scan of one host, stage after stage, into a :class:`~.report.HostReport`.

The stages: host discovery (unless ``discovery`` is ``none``), the TCP port scan (SYN as root,
else connect), the UDP port scan, banners and TLS certificates of open TCP ports, the path
(traceroute), and the MAC address of a host that answered on a local link (from the kernel's
neighbour table, which the scan's own traffic filled). :class:`ScanOptions` says which stages
run and how; it is plain data, so a work unit can carry it to another process or host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from stockade.sensors.scan.neighbours import neighbour_mac
from stockade.sensors.scan.report import DOWN, UP, HostReport, PortReport
from stockade.sensors.scan.targets import Target


@dataclass
class ScanOptions:
    tcp: list[int] = field(default_factory=list)
    udp: list[int] = field(default_factory=list)
    method: str = "auto"  # auto (SYN as root, else connect) | syn | connect
    discovery: str = "none"  # none | auto (what nmap does by default)
    retries: int = 2
    rate: int = 0
    banners: bool = False
    tls_ports: list[int] = field(default_factory=list)
    traceroute: bool = False

    @property
    def use_syn(self) -> bool:
        return self.method == "syn" or (self.method == "auto" and os.geteuid() == 0)


def scan_host(target: Target, opts: ScanOptions) -> HostReport:
    from stockade.sensors.scan.connect import connect_scan
    from stockade.sensors.scan.syn import syn_scan
    from stockade.sensors.scan.udp import udp_scan

    start = time.monotonic()
    report = HostReport(target.address, target.name or None)
    if opts.discovery == "none":
        report.state, report.reason = UP, "user-set"
    reasons: list[str] = []  # what answered, strongest first
    if opts.tcp:
        scanner = syn_scan if opts.use_syn else connect_scan
        r = scanner(target.address, opts.tcp, retries=opts.retries, rate=opts.rate)
        report.ports += [PortReport(p, "tcp", s) for p, s in sorted(r.ports.items())]
        answered = [s for s in r.ports.values() if s != "filtered"]
        if answered:
            reasons.append("syn-ack" if "open" in answered else "reset")
    if opts.udp:
        u = udp_scan(target.address, opts.udp, retries=opts.retries, rate=opts.rate)
        report.ports += [PortReport(p, "udp", s) for p, s in sorted(u.ports.items())]
        states = set(u.ports.values())
        if "open" in states:
            reasons.append("udp-response")
        elif "closed" in states:
            reasons.append("port-unreach")
    if reasons:
        report.state, report.reason = UP, reasons[0]
    elif (opts.tcp or opts.udp) and opts.discovery == "none":
        report.state, report.reason = DOWN, "no-response"
    if report.state == UP:
        report.mac = neighbour_mac(target.address)
    if opts.traceroute and report.state == UP:
        from stockade.sensors.scan.traceroute import trace

        report.path = trace(target.address)
    report.elapsed = time.monotonic() - start
    return report


def scan_hosts(targets: Iterable[Target], opts: ScanOptions) -> Iterator[HostReport]:
    for t in targets:
        yield scan_host(t, opts)
