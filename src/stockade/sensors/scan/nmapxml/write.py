"""Scan results as nmap's XML (``-oX``), so ndiff and the tools that read nmap's files read
stockade's.

The document follows nmap's DTD (``/usr/share/nmap/nmap.dtd``) element for element: an
``nmaprun`` with ``scaninfo`` per protocol, a ``host`` per host that is up (as nmap, down hosts
are only counted), its ports with the many closed or filtered ones folded into ``extraports``
(more than 25 in one state, as nmap does; ``extrareasons`` lists them), service names from
nmap-services (or the detected service and version, as ``-sV`` writes them), banners as nmap's
``banner`` script, certificates as its ``ssl-cert`` script,
the path as ``trace``, and ``runstats``. One difference, on purpose: ``scanner`` is
``stockade`` (ndiff and the report tools read it; the DTD's list names only ``nmap``).

:class:`NmapXmlWriter` gives the document in pieces — header, one host at a time, footer — so
the CLI writes each host as it is done and an interrupted scan still leaves a whole file.
Elements are built with ``xml.etree`` (which escapes); text that XML cannot hold (control
characters) is written as ``\\xNN``.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from stockade import __version__
from stockade.sensors.scan.nmapxml.service import service_element
from stockade.sensors.scan.nmapxml.sslcert import ssl_cert_script
from stockade.sensors.scan.nmapxml.tables import compact_ports, vendor_of
from stockade.sensors.scan.report import UP, HostReport, PortReport

XML_OUTPUT_VERSION = "1.05"  # nmap 7.93's
EXTRA_PORTS_OVER = 25  # nmap folds a state's ports into <extraports> past this many
HOST_STATES = {"up", "down", "unknown", "skipped"}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry written as ``\\xNN``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def port_reason(port: PortReport, tcp_type: str) -> str:
    """What showed ``port``'s state, in nmap's words (the scanners report states only)."""
    if port.proto == "udp":
        return {"open": "udp-response", "closed": "port-unreach"}.get(port.state, "no-response")
    if port.state == "open":
        return "syn-ack"
    if port.state == "closed":
        return "conn-refused" if tcp_type == "connect" else "reset"
    return "no-response"


@dataclass
class ScanRun:
    """What the ``nmaprun`` element says about the scan as a whole."""

    args: str
    start: float  # seconds since the epoch
    tcp: list[int] = field(default_factory=list)
    udp: list[int] = field(default_factory=list)
    tcp_type: str = "syn"  # syn | connect
    version: str = __version__
    stylesheet: str | None = None  # href of nmap.xsl, for browsers


class NmapXmlWriter:
    """The XML document in pieces: :meth:`header`, :meth:`host` per host, :meth:`footer`."""

    def __init__(
        self,
        run: ScanRun,
        services: dict[tuple[int, str], str] | None = None,
        vendors: dict[str, str] | None = None,
    ) -> None:
        self.run = run
        self.services = services or {}
        self.vendors = vendors or {}
        self.up = self.down = 0

    def header(self) -> str:
        run = self.run
        startstr = time.ctime(run.start)
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<!DOCTYPE nmaprun>"]
        if run.stylesheet:
            href = _tostring(ET.Element("x", href=run.stylesheet))[3:-3]
            lines.append(f'<?xml-stylesheet {href} type="text/xsl"?>')
        said = xml_text(f"stockade {run.version} scan initiated {startstr} as: {run.args}")
        lines.append(f"<!-- {said.replace('--', '-&#45;')} -->")
        nmaprun = ET.Element(
            "nmaprun",
            scanner="stockade",
            args=xml_text(run.args),
            start=str(int(run.start)),
            startstr=startstr,
            version=run.version,
            xmloutputversion=XML_OUTPUT_VERSION,
        )
        lines.append(_tostring(nmaprun).removesuffix(" />") + ">")
        for proto, ports, kind in (("tcp", run.tcp, run.tcp_type), ("udp", run.udp, "udp")):
            if ports:
                info = ET.Element(
                    "scaninfo",
                    type=kind,
                    protocol=proto,
                    numservices=str(len(set(ports))),
                    services=compact_ports(ports),
                )
                lines.append(_tostring(info))
        lines += ['<verbose level="0"/>', '<debugging level="0"/>']
        return "\n".join(lines) + "\n"

    def host(self, report: HostReport) -> str:
        """The ``host`` element of ``report``, or "" for a host that is not up (counted)."""
        if report.state != UP:
            self.down += 1
            return ""
        self.up += 1
        element = host_element(report, self.run.tcp_type, self.services, self.vendors)
        ET.indent(element, space="")
        return _tostring(element) + "\n"

    def footer(self, end: float, error: str | None = None) -> str:
        total = self.up + self.down
        timestr = time.ctime(end)
        elapsed = f"{max(0.0, end - self.run.start):.2f}"
        addresses = f"{total} IP address{'' if total == 1 else 'es'}"
        hosts_up = f"{self.up} host{'' if self.up == 1 else 's'} up"
        runstats = ET.Element("runstats")
        finished = ET.SubElement(
            runstats,
            "finished",
            time=str(int(end)),
            timestr=timestr,
            summary=f"stockade done at {timestr}; {addresses} ({hosts_up}) "
            f"scanned in {elapsed} seconds",
            elapsed=elapsed,
            exit="error" if error else "success",
        )
        if error:
            finished.set("errormsg", xml_text(error))
        ET.SubElement(runstats, "hosts", up=str(self.up), down=str(self.down), total=str(total))
        return _tostring(runstats) + "\n</nmaprun>\n"


def nmap_xml(
    run: ScanRun,
    hosts: Iterable[HostReport],
    end: float,
    *,
    error: str | None = None,
    services: dict[tuple[int, str], str] | None = None,
    vendors: dict[str, str] | None = None,
) -> str:
    """The whole document for ``hosts``."""
    writer = NmapXmlWriter(run, services, vendors)
    body = "".join(writer.host(h) for h in hosts)
    return writer.header() + body + writer.footer(end, error)


def host_element(
    report: HostReport,
    tcp_type: str,
    services: dict[tuple[int, str], str],
    vendors: dict[str, str],
) -> ET.Element:
    host = ET.Element("host")
    ET.SubElement(
        host,
        "status",
        state=report.state if report.state in HOST_STATES else "unknown",
        reason=xml_text(report.reason or "unknown"),
        reason_ttl="0",
    )
    kind = "ipv6" if ":" in report.address else "ipv4"
    ET.SubElement(host, "address", addr=report.address, addrtype=kind)
    if report.mac:
        mac = ET.SubElement(host, "address", addr=report.mac.upper(), addrtype="mac")
        vendor = vendor_of(report.mac, vendors)
        if vendor:
            mac.set("vendor", vendor)
    names = ET.SubElement(host, "hostnames")
    if report.name:
        ET.SubElement(names, "hostname", name=xml_text(report.name), type="user")
    if report.ports:
        host.append(ports_element(report.ports, tcp_type, services))
    if report.path:
        trace = ET.SubElement(host, "trace")
        for hop in report.path:
            if hop.address is None:
                continue  # nmap lists only the hops that answered
            attrs = {"ttl": str(hop.ttl), "ipaddr": hop.address}
            rtts = [r for r in hop.rtts if r is not None]
            if rtts:
                attrs["rtt"] = f"{min(rtts) * 1000:.2f}"
            ET.SubElement(trace, "hop", attrs)
    return host


def ports_element(
    ports: list[PortReport], tcp_type: str, services: dict[tuple[int, str], str]
) -> ET.Element:
    element = ET.Element("ports")
    counts = Counter(p.state for p in ports)
    folded = {s for s, n in counts.items() if s != "open" and n > EXTRA_PORTS_OVER}
    for state in sorted(folded, key=lambda s: (-counts[s], s)):
        extra = ET.SubElement(element, "extraports", state=state, count=str(counts[state]))
        reasons: dict[tuple[str, str], list[int]] = {}
        for p in ports:
            if p.state == state:
                reasons.setdefault((port_reason(p, tcp_type), p.proto), []).append(p.port)
        for (reason, proto), numbers in sorted(reasons.items()):
            ET.SubElement(
                extra,
                "extrareasons",
                reason=reason,
                count=str(len(numbers)),
                proto=proto,
                ports=compact_ports(numbers),
            )
    for p in sorted(ports, key=lambda p: (p.proto, p.port)):
        if p.state not in folded:
            element.append(port_element(p, tcp_type, services))
    return element


def port_element(p: PortReport, tcp_type: str, services: dict[tuple[int, str], str]) -> ET.Element:
    port = ET.Element("port", protocol=p.proto, portid=str(p.port))
    reason = port_reason(p, tcp_type)
    ET.SubElement(port, "state", state=p.state, reason=reason, reason_ttl="0")
    name = services.get((p.port, p.proto))
    if p.service is not None:
        port.append(service_element(p.service, xml_text))
    elif name:
        ET.SubElement(port, "service", name=name, method="table", conf="3")
    if p.banner is not None:
        ET.SubElement(port, "script", id="banner", output=xml_text(p.banner))
    if p.cert is not None:
        script = ssl_cert_script(p.cert)
        for node in script.iter():
            for key, value in node.attrib.items():
                node.set(key, xml_text(value))
            if node.text:
                node.text = xml_text(node.text)
        port.append(script)
    return port


def _tostring(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")
