"""Certificate chains made for a test with ``cryptography``: a root CA, an intermediate and
leaves with subject alternative names, each valid for the days asked."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def name(cn: str, org: str = "") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    ca: bool,
    days: float,
    sans: tuple[str, ...] = (),
    start: datetime | None = None,
) -> Issued:
    """A certificate for ``subject`` signed by ``issuer`` (None: self-signed), valid from
    ``start`` (default: a day ago) until ``days`` days from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start or now() - timedelta(days=1))
        .not_valid_after(now() + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        alt: list[x509.GeneralName] = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class Chain:
    root: Issued
    intermediate: Issued
    leaf: Issued

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """``stem``.pem (leaf then intermediate, as a server sends them) and ``stem``.key."""
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / f"{stem}.pem", folder / f"{stem}.key"
        cert.write_bytes(self.leaf.pem + self.intermediate.pem)
        key.write_bytes(
            self.leaf.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert, key


def chain(cn: str, sans: tuple[str, ...], days: float, org: str = "Facts, Test Inc.") -> Chain:
    """Root CA → intermediate → leaf ``cn`` with ``sans``, the leaf valid ``days`` more days."""
    root = issue(name("Facts Test Root CA", org), None, ca=True, days=3650)
    mid = issue(name("Facts Test Intermediate", org), root, ca=True, days=1825)
    leaf = issue(name(cn, org), mid, ca=False, days=days, sans=sans)
    return Chain(root, mid, leaf)
