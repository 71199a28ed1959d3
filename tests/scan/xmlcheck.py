"""Validating XML against nmap's DTD with xmllint, for the -oX tests.

nmap's DTD allows only ``scanner="nmap"``; stockade writes ``scanner="stockade"`` (as masscan
writes ``masscan``). :func:`dtd_for` makes a copy of nmap's DTD that differs in exactly that
enumeration, so everything else in stockade's files is checked against nmap's own rules.
:func:`make_cert` makes a certificate to serve or to write as nmap's ssl-cert script.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from stockade.sensors.scan.report import Cert

NMAP_DTD = Path("/usr/share/nmap/nmap.dtd")


def need_tools(*tools: str) -> None:
    if not NMAP_DTD.exists():
        pytest.skip("nmap's DTD is not installed (apt package nmap)")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (see scripts/test)")


def dtd_for(scanner: str, folder: Path) -> Path:
    """nmap's DTD, or (for ``stockade``) a copy whose only change admits that scanner name."""
    if scanner == "nmap":
        return NMAP_DTD
    text, changed = re.subn(r"(scanner\s+)\(nmap\)", r"\1(nmap|stockade)", NMAP_DTD.read_text())
    assert changed == 1, "nmap's DTD no longer declares scanner as (nmap)"
    path = folder / "nmap-and-stockade.dtd"
    path.write_text(text)
    return path


def dtd_errors(xml: Path, dtd: Path) -> list[str]:
    """xmllint's complaints about ``xml`` against ``dtd`` (empty: valid)."""
    done = subprocess.run(
        ["xmllint", "--noout", "--dtdvalid", str(dtd), str(xml)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert (done.returncode == 0) == (not errors), done.stderr
    return errors


def make_cert() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Cert]:
    """A self-made certificate (names that need escaping, DNS and IP SANs) and its Cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "lab.example"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab & Co, <Test>"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "a/b"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lab CA")])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sans = x509.SubjectAlternativeName(
        [x509.DNSName("lab.example"), x509.IPAddress(ipaddress.ip_address("10.9.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(sans, critical=False)
        .sign(key, hashes.SHA256())
    )
    model = Cert(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=["lab.example", "10.9.0.1"],
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
    )
    return key, cert, model
