"""A TLS certificate (:class:`~stockade.sensors.scan.report.Cert`) as nmap's ``ssl-cert``
script shapes it in XML, and back.

nmap writes the subject and issuer as tables keyed by OpenSSL's long attribute names
(``commonName``, ``organizationName`` …, sorted by key), the validity as ``notBefore``/
``notAfter`` in UTC without a zone, fingerprints as lower-case hex elements, and a text
``output`` with one line per fact, whose names show (at nmap's default verbosity) only the
common name, organisation, state and country, in that order. stockade keeps names as RFC 4514
strings (``CN=a,O=b``, most significant attribute last); this module converts between the two.

The tables lose the certificate's attribute order, so stockade adds two elements nmap's tools
pass over, ``subject_rfc4514`` and ``issuer_rfc4514``, and reads its own files back exactly; a
third, ``tls_via``, names the in-protocol upgrade (``smtp``, ``imap`` …) the certificate came
after.
Reading nmap's files prefers the ``pem`` element nmap adds (the exact certificate); without
either, the attributes are put in the usual order (country first, common name last).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from stockade.sensors.scan.report import Cert

#: OpenSSL's long names of the attributes seen in certificate names, by OID.
LONG_NAMES = {
    "2.5.4.3": "commonName",
    "2.5.4.4": "surname",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "countryName",
    "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName",
    "2.5.4.9": "streetAddress",
    "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName",
    "2.5.4.12": "title",
    "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode",
    "2.5.4.42": "givenName",
    "2.5.4.43": "initials",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "0.9.2342.19200300.100.1.1": "userId",
    "0.9.2342.19200300.100.1.25": "domainComponent",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocalityName",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvinceName",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountryName",
}
#: The short names RFC 4514 strings use (as ``cryptography`` writes them); others are OIDs.
SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}
_OID_BY_LONG = {v: k for k, v in LONG_NAMES.items()}
#: The attributes nmap's ssl-cert shows in its output at the default verbosity, in its order.
SHOWN = ("commonName", "organizationName", "stateOrProvinceName", "countryName")
#: The usual order of attributes in a certificate's name (most significant first).
_USUAL = (
    "domainComponent",
    "countryName",
    "stateOrProvinceName",
    "localityName",
    "streetAddress",
    "organizationName",
    "organizationalUnitName",
    "commonName",
)
_OID = re.compile(r"\d+(\.\d+)+")
_SAN_PREFIX = re.compile(r"^(DNS|IP Address|IP|email|URI):", re.IGNORECASE)


# --- names --------------------------------------------------------------------------------


def name_fields(rfc4514: str) -> list[tuple[str, str]]:
    """``"C=DE,O=Lab,CN=a"`` -> ``[("commonName", "a"), ("organizationName", "Lab"),
    ("countryName", "DE")]``: certificate order, nmap's keys. A string that is not RFC 4514
    gives ``[]``."""
    from cryptography import x509

    try:
        name = x509.Name.from_rfc4514_string(rfc4514)
    except ValueError:
        return []
    fields: list[tuple[str, str]] = []
    for attr in name:
        oid = attr.oid.dotted_string
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        fields.append((LONG_NAMES.get(oid, oid), value))
    return fields


def rfc4514_of(fields: list[tuple[str, str]]) -> str:
    """The RFC 4514 string of ``fields`` (certificate order, nmap's keys or OIDs), as
    ``cryptography``'s ``Name.rfc4514_string`` writes it; unknown keys are left out."""
    parts: list[str] = []
    for key, value in reversed(fields):
        oid = _OID_BY_LONG.get(key, key if _OID.fullmatch(key) else "")
        if oid:
            parts.append(f"{SHORT_NAMES.get(oid, oid)}={escape_rfc4514(value)}")
    return ",".join(parts)


def escape_rfc4514(value: str) -> str:
    """Escape an attribute value as RFC 4514 section 2.4 asks."""
    if not value:
        return ""
    out = re.sub(r'([\\",+;<>])', r"\\\1", value).replace("\0", "\\00")
    if out[0] == "#" or (out[0] == " " and len(out) > 1):
        out = "\\" + out
    if out[-1] == " ":
        out = out[:-1] + "\\ "
    return out


def _slashed(fields: list[tuple[str, str]], raw: str) -> str:
    """The name as nmap's output line shows it: the attributes of :data:`SHOWN`."""
    if not fields:
        return raw
    values = dict(reversed(fields))  # the first value of a key, as nmap's table keeps
    return "/".join(f"{k}={values[k]}" for k in SHOWN if k in values)


def _usual_order(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    rank = {k: i for i, k in enumerate(_USUAL)}
    return sorted(fields, key=lambda f: (rank.get(f[0], len(rank)), f[0]))


def _split_slashed(text: str) -> list[tuple[str, str]]:
    """``commonName=a/organizationName=b/c`` -> fields (a ``/`` inside a value stays)."""
    fields: list[tuple[str, str]] = []
    for part in re.split(r"/(?=[A-Za-z][A-Za-z0-9]*=|\d+(?:\.\d+)+=)", text):
        key, eq, value = part.partition("=")
        if eq:
            fields.append((key, value))
    return fields


# --- times and SANs -----------------------------------------------------------------------


def nmap_time(iso: str) -> str:
    """ISO 8601 (any zone) -> nmap's ``2026-11-26T17:17:30`` (UTC, no zone)."""
    try:
        when = datetime.fromisoformat(iso)
        if when.tzinfo is not None:
            when = when.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return iso
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def iso_time(nmap: str) -> str:
    """nmap's validity time (UTC, usually no zone) -> ISO 8601 with ``+00:00``."""
    try:
        when = datetime.fromisoformat(nmap.strip())
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return nmap
    return when.isoformat()


def san_text(san: str) -> str:
    """A SAN as OpenSSL prints it: ``DNS:name`` or ``IP Address:addr``."""
    if _SAN_PREFIX.match(san):
        return san
    try:
        ipaddress.ip_address(san)
    except ValueError:
        return f"DNS:{san}"
    return f"IP Address:{san}"


def san_value(text: str) -> str:
    return _SAN_PREFIX.sub("", text.strip(), count=1)


# --- Cert -> <script id="ssl-cert"> -------------------------------------------------------


def _table(parent: ET.Element, key: str | None, items: list[tuple[str, str]]) -> ET.Element:
    table = ET.SubElement(parent, "table", {} if key is None else {"key": key})
    for k, v in items:
        ET.SubElement(table, "elem", key=k).text = v
    return table


def ssl_cert_script(cert: Cert) -> ET.Element:
    """``<script id="ssl-cert">`` for ``cert``, in the shape nmap's script gives."""
    subject, issuer = name_fields(cert.subject), name_fields(cert.issuer)
    lines = [f"Subject: {_slashed(subject, cert.subject)}"]
    sans = ", ".join(san_text(s) for s in cert.sans)
    if sans:
        lines.append(f"Subject Alternative Name: {sans}")
    lines += [
        f"Issuer: {_slashed(issuer, cert.issuer)}",
        f"Not valid before: {nmap_time(cert.not_before)}",
        f"Not valid after:  {nmap_time(cert.not_after)}",
        f"SHA-256: {cert.sha256}",
    ]
    script = ET.Element("script", id="ssl-cert", output="\n".join(lines))
    _table(script, "subject", sorted(subject))
    _table(script, "issuer", sorted(issuer))
    ET.SubElement(script, "elem", key="subject_rfc4514").text = cert.subject
    ET.SubElement(script, "elem", key="issuer_rfc4514").text = cert.issuer
    if sans:
        extensions = ET.SubElement(script, "table", key="extensions")
        _table(extensions, None, [("name", "X509v3 Subject Alternative Name"), ("value", sans)])
    validity = [("notBefore", nmap_time(cert.not_before)), ("notAfter", nmap_time(cert.not_after))]
    _table(script, "validity", validity)
    ET.SubElement(script, "elem", key="sha256").text = cert.sha256
    if cert.tls_via:
        ET.SubElement(script, "elem", key="tls_via").text = cert.tls_via
    return script


# --- <script id="ssl-cert"> -> Cert -------------------------------------------------------


def cert_from_pem(pem: str) -> Cert | None:
    """The :class:`Cert` of a PEM certificate (``None`` when it does not decode)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        c = x509.load_pem_x509_certificate(pem.encode("ascii", "replace"))
        sans: list[str] = []
        try:
            ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = [*ext.get_values_for_type(x509.DNSName)]
            sans += [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        return Cert(
            subject=c.subject.rfc4514_string(),
            issuer=c.issuer.rfc4514_string(),
            sans=sans,
            not_before=c.not_valid_before_utc.isoformat(),
            not_after=c.not_valid_after_utc.isoformat(),
            sha256=hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest(),
        )
    except Exception:  # a damaged certificate: cryptography raises more than ValueError
        return None


def _elems(node: ET.Element | None) -> dict[str, str]:
    if node is None:
        return {}
    return {e.get("key", ""): (e.text or "") for e in node.findall("elem")}


def _output_line(output: str, label: str) -> str | None:
    for line in output.splitlines():
        if line.startswith(f"{label}:"):
            return line[len(label) + 1 :].strip()
    return None


def cert_from_script(script: ET.Element) -> Cert | None:
    """The :class:`Cert` in an ``ssl-cert`` script element (nmap's or stockade's); ``None``
    when it holds too little to say which certificate it was."""
    top = _elems(script)
    if top.get("pem"):
        from_pem = cert_from_pem(top["pem"])
        if from_pem is not None:
            from_pem.tls_via = top.get("tls_via", "")
            return from_pem
    output = script.get("output", "")
    tables = {t.get("key"): t for t in script.findall("table")}
    names: dict[str, str] = {}
    for which, label in (("subject", "Subject"), ("issuer", "Issuer")):
        exact = top.get(f"{which}_rfc4514")
        if exact is not None:
            names[which] = exact
            continue
        line = _output_line(output, label) or ""
        fields = list(_elems(tables.get(which)).items()) or _split_slashed(line)
        names[which] = rfc4514_of(_usual_order(fields)) or line
    validity = _elems(tables.get("validity"))
    not_before = validity.get("notBefore") or _output_line(output, "Not valid before") or ""
    not_after = validity.get("notAfter") or _output_line(output, "Not valid after") or ""
    sha256 = top.get("sha256") or _output_line(output, "SHA-256") or ""
    if not sha256 and not names["subject"]:
        return None
    san_line = _output_line(output, "Subject Alternative Name") or ""
    return Cert(
        subject=names["subject"],
        issuer=names["issuer"],
        sans=[san_value(s) for s in san_line.split(",") if s.strip()],
        not_before=iso_time(not_before) if not_before else "",
        not_after=iso_time(not_after) if not_after else "",
        sha256=sha256.replace(" ", "").replace(":", "").lower(),
        tls_via=top.get("tls_via", ""),
    )
