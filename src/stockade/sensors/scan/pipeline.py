"""One scan of one host, stage after stage, into a :class:`~.report.HostReport`.

The stages: host discovery (unless ``discovery`` is ``none``), the TCP port scan (SYN as root,
else connect), the UDP port scan, banners and TLS certificates of open TCP ports, and the path
(traceroute). :class:`ScanOptions` says which stages run and how; it is plain data, so a work
unit can carry it to another process or host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    discovery: str = "none"  # none | auto (what nmap does by default)
    retries: int = 2
    rate: int = 0
    banners: bool = False  # banners and TLS certificates of open TCP ports (-sV)
    tls_ports: list[int] = field(default_factory=lambda: list(TLS_PORTS))

    @property
    def use_syn(self) -> bool:
        return self.method == "syn" or (self.method == "auto" and os.geteuid() == 0)


def scan_host(target: Target, opts: ScanOptions) -> HostReport:
    from stockade.sensors.scan.connect import connect_scan
    from stockade.sensors.scan.syn import syn_scan

    start = time.monotonic()
    report = HostReport(target.address, target.name or None)
    if opts.discovery == "none":
        report.state, report.reason = UP, "user-set"
    if opts.tcp:
        scanner = syn_scan if opts.use_syn else connect_scan
        r = scanner(target.address, opts.tcp, retries=opts.retries, rate=opts.rate)
        report.ports += [PortReport(p, "tcp", s) for p, s in sorted(r.ports.items())]
        answered = [s for s in r.ports.values() if s != "filtered"]
        if answered:
            report.state = UP
            report.reason = "syn-ack" if "open" in answered else "reset"
        elif opts.discovery == "none":
            report.state, report.reason = DOWN, "no-response"
        if opts.banners:
            _service_facts(report, target, opts, r.timing)
    report.elapsed = time.monotonic() - start
    return report


def _service_facts(report: HostReport, target: Target, opts: ScanOptions, timing: Timing) -> None:
    from stockade.sensors.scan.facts import service_facts

    open_tcp = report.open_ports("tcp")
    found = service_facts(
        target.address,
        [p.port for p in open_tcp],
        name=target.name,
        tls_ports=opts.tls_ports,
        timing=timing,
        rate=opts.rate,
    )
    for p in open_tcp:
        if p.port in found:
            p.banner, p.cert = found[p.port].banner, found[p.port].cert


def scan_hosts(targets: Iterable[Target], opts: ScanOptions) -> Iterator[HostReport]:
    for t in targets:
        yield scan_host(t, opts)
