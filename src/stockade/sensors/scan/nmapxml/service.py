"""A port's service and version as nmap's XML writes them after ``-sV``:
``<service name= product= version= extrainfo= hostname= ostype= devicetype= method="probed"
conf="10">`` with a ``<cpe>`` element per CPE name. Only ``method="probed"`` is read back: a
``method="table"`` service is nmap-services' guess from the port number, not a detection.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

from stockade.sensors.scan.report import SERVICE_FIELDS, Service


def service_element(service: Service, clean: Callable[[str], str]) -> ET.Element:
    """The ``<service>`` element of a detected service (``clean`` makes text XML-safe)."""
    attrs = {"name": clean(service.name)}
    for key in SERVICE_FIELDS:
        if getattr(service, key):
            attrs[key] = clean(getattr(service, key))
    attrs |= {"method": "probed", "conf": "10"}
    element = ET.Element("service", attrs)
    for cpe in service.cpe:
        ET.SubElement(element, "cpe").text = clean(cpe)
    return element


def service_from_element(element: ET.Element) -> Service | None:
    """The detected service of a ``<service>`` element; None for a port-number guess."""
    name = element.get("name")
    if element.get("method") != "probed" or not name:
        return None
    fields = {k: element.get(k, "") for k in SERVICE_FIELDS}
    cpe = [c.text.strip() for c in element.findall("cpe") if c.text and c.text.strip()]
    return Service.of(name, fields, cpe)
