"""Read nmap's XML (``nmap -oX``) and stockade's (``stockade scan -oX``) into
:class:`~stockade.sensors.scan.report.HostReport`.

These files may come from anywhere, so the parser refuses entity declarations and external
references (defusedxml: no "billion laughs", no file or network reads) while allowing nmap's
``<!DOCTYPE nmaprun>``. A document that is not well-formed, or lacks what nmap's DTD makes
mandatory and a report needs (an IP address per host, a number, protocol and state per port),
raises one :class:`~stockade.errors.StockadeError` line naming the file and line.

What a report keeps: host state and reason, IP and MAC address, the first host name, every port
(the ones folded into ``extraports`` too, when ``extrareasons`` lists them, as nmap 7.90 and
later and stockade do), the detected service and version (``service`` with
``method="probed"``), banners (the ``banner`` script), certificates (``ssl-cert``: from its
PEM when nmap gave one), the path (``trace``: one RTT per hop, hops that did not answer are
left out by nmap and come back as hops without an address), the smoothed RTT and the time
the host took.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from stockade.errors import StockadeError
from stockade.sensors.scan.nmapxml.service import service_from_element
from stockade.sensors.scan.nmapxml.sslcert import cert_from_script
from stockade.sensors.scan.nmapxml.tables import expand_ports
from stockade.sensors.scan.report import Hop, HostReport, PortReport

_POSITION = re.compile(r":\s*line \d+, column \d+$")


class _LineBuilder(ET.TreeBuilder):
    """A tree builder that remembers the line each element starts on."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: DefusedXMLParser | None = None
        self.lines: dict[int, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        if self.parser is not None:
            self.lines[id(element)] = self.parser.parser.CurrentLineNumber
        return element


class _Reader:
    def __init__(self, source: str, lines: dict[int, int]) -> None:
        self.source, self.lines = source, lines

    def fail(self, element: ET.Element, what: str) -> StockadeError:
        line = self.lines.get(id(element), 0)
        return StockadeError(
            f"{self.source}:{line}: <{element.tag}> {what}; "
            "give a file written by nmap -oX or stockade scan -oX"
        )

    def need(self, element: ET.Element, attr: str) -> str:
        value = element.get(attr)
        if value is None or not value.strip():
            raise self.fail(element, f"has no {attr}")
        return value.strip()

    def number(self, element: ET.Element, attr: str, low: int, high: int) -> int:
        value = self.need(element, attr)
        if not re.fullmatch(r"\d{1,9}", value, re.ASCII) or not low <= int(value) <= high:
            raise self.fail(element, f"{attr} {value!r} is not a number within {low}-{high}")
        return int(value)

    def host(self, element: ET.Element) -> HostReport:
        report = HostReport(address="")
        status = element.find("status")
        if status is None:
            raise self.fail(element, "has no <status>")
        report.state = self.need(status, "state")
        report.reason = status.get("reason", "")
        for address in element.findall("address"):
            kind, addr = address.get("addrtype", "ipv4"), self.need(address, "addr")
            if kind == "mac":
                report.mac = report.mac or addr.lower()
            elif not report.address:
                report.address = addr
        if not report.address:
            raise self.fail(element, "has no IPv4 or IPv6 <address>")
        names = element.findall("hostnames/hostname")
        names.sort(key=lambda n: n.get("type") != "user")
        report.name = next((n.get("name") for n in names if n.get("name")), None)
        ports = element.find("ports")
        if ports is not None:
            report.ports = self.ports(ports)
        trace = element.find("trace")
        if trace is not None:
            report.path = self.path(trace)
        times = element.find("times")
        srtt = _whole(None if times is None else times.get("srtt"))
        if srtt is not None:
            report.rtt = srtt / 1e6
        start, end = _whole(element.get("starttime")), _whole(element.get("endtime"))
        if start is not None and end is not None:
            report.elapsed = float(max(0, end - start))
        return report

    def ports(self, element: ET.Element) -> list[PortReport]:
        found: dict[tuple[int, str], PortReport] = {}
        for extra in element.findall("extraports"):
            state = self.need(extra, "state")
            for reasons in extra.findall("extrareasons"):
                listed = reasons.get("ports")
                if listed is None:
                    continue  # nmap before 7.90 only counted them
                proto = reasons.get("proto", "tcp")
                try:
                    numbers = expand_ports(listed)
                except ValueError as e:
                    raise self.fail(reasons, f"ports: {e}") from None
                for n in numbers:
                    found[(n, proto)] = PortReport(n, proto, state)
        for port in element.findall("port"):
            number = self.number(port, "portid", 0, 65535)
            proto = self.need(port, "protocol")
            state_element = port.find("state")
            if state_element is None:
                raise self.fail(port, "has no <state>")
            report = PortReport(number, proto, self.need(state_element, "state"))
            service = port.find("service")
            if service is not None:
                report.service = service_from_element(service)
            for script in port.findall("script"):
                if script.get("id") == "banner":
                    report.banner = script.get("output", "")
                elif script.get("id") == "ssl-cert":
                    report.cert = cert_from_script(script)
            found[(number, proto)] = report
        return sorted(found.values(), key=lambda p: (p.proto, p.port))

    def path(self, element: ET.Element) -> list[Hop]:
        hops: dict[int, Hop] = {}
        for hop in element.findall("hop"):
            ttl = self.number(hop, "ttl", 1, 255)
            rtt = hop.get("rtt", "")
            try:
                rtts: list[float | None] = [round(float(rtt) / 1000, 9)] if rtt else []
            except ValueError:
                raise self.fail(hop, f"rtt {rtt!r} is not a number") from None
            hops[ttl] = Hop(ttl, hop.get("ipaddr") or None, rtts)
        last = max(hops, default=0)
        return [hops.get(ttl) or Hop(ttl, None, []) for ttl in range(1, last + 1)]


def _whole(text: str | None) -> int | None:
    """A whole number written in ASCII digits, else None."""
    if text is None or not re.fullmatch(r"\d{1,15}", text.strip(), re.ASCII):
        return None
    return int(text)


def _parse(text: str | bytes, source: str) -> tuple[ET.Element, dict[int, int]]:
    builder = _LineBuilder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    builder.parser = parser
    try:
        parser.feed(text)
        root = parser.close()
    except ET.ParseError as e:
        line = e.position[0]
        why = _POSITION.sub("", str(e))
        raise StockadeError(
            f"{source}:{line}: not well-formed XML ({why}); "
            "give a whole file written by nmap -oX or stockade scan -oX"
        ) from None
    except DefusedXmlException as e:
        line = parser.parser.CurrentLineNumber
        raise StockadeError(
            f"{source}:{line}: refused: {e}; nmap's XML declares no entities and "
            "references no other file"
        ) from None
    return root, builder.lines


def read_nmap_xml(text: str | bytes, source: str = "XML") -> list[HostReport]:
    """The hosts of an nmap XML document (``source`` names it in error messages)."""
    root, lines = _parse(text, source)
    reader = _Reader(source, lines)
    if root.tag != "nmaprun":
        raise reader.fail(root, "is not <nmaprun>: this is not an nmap XML file")
    return [reader.host(h) for h in root.findall("host")]
