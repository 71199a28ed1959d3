"""nmap-compatible XML: stockade's scan results written as ``nmap -oX`` writes them
(:mod:`.write`), and nmap's or stockade's XML read back into reports (:mod:`.read`)."""

from stockade.sensors.scan.nmapxml.read import read_nmap_xml
from stockade.sensors.scan.nmapxml.write import NmapXmlWriter, ScanRun, nmap_xml

__all__ = ["NmapXmlWriter", "ScanRun", "nmap_xml", "read_nmap_xml"]
