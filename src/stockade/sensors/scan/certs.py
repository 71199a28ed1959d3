"""TLS certificates as facts: decode the DER chain a server sent into a
:class:`~stockade.sensors.scan.report.Cert`, and the two questions a baseline asks of one —
does it expire soon (:func:`expiring`), and what changed since last time (:func:`cert_changes`).

Everything here is pure (no I/O); decoding is done by ``cryptography``. Subject and issuer are
RFC 4514 strings, subject alternative names are ``DNS:name`` and ``IP:address`` (other kinds
are left out), times are ISO 8601 in UTC (``2026-01-31T12:00:00Z``), fingerprints the SHA-256
of the DER in lower-case hex. The chain is every certificate the server sent, in its order (the
leaf first).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509

from stockade.sensors.scan.report import Cert

_TIME = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(when: datetime) -> str:
    """``when`` (naive means UTC) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime(_TIME)


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO 8601 time as written by :func:`iso_utc` (or any ISO form) as an aware UTC time."""
    try:
        when = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:  # an attribute cryptography cannot render: show its raw form
        return ",".join(f"{a.oid.dotted_string}={a.value!r}" for a in name)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except ValueError:  # a malformed extension: the rest of the certificate is still a fact
        return []
    names = [f"DNS:{n}" for n in ext.value.get_values_for_type(x509.DNSName)]
    names += [f"IP:{a}" for a in ext.value.get_values_for_type(x509.IPAddress)]
    return names


def _load(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise ValueError(f"not a DER X.509 certificate: {e}") from None


def _summary(der: bytes) -> dict[str, str]:
    """One chain entry: subject, issuer, sha256, not_after (empty strings when undecodable)."""
    entry = {"subject": "", "issuer": "", "sha256": hashlib.sha256(der).hexdigest()}
    entry["not_after"] = ""
    try:
        cert = _load(der)
        entry["subject"], entry["issuer"] = _name(cert.subject), _name(cert.issuer)
        entry["not_after"] = iso_utc(cert.not_valid_after_utc)
    except ValueError:
        pass
    return entry


def decode_chain(chain: list[bytes]) -> Cert:
    """The leaf (``chain[0]``) as a :class:`Cert`, with every certificate of ``chain`` in
    ``Cert.chain``. Raises ``ValueError`` when the chain is empty or the leaf is not a
    certificate."""
    if not chain:
        raise ValueError("the server sent no certificate")
    leaf = _load(chain[0])
    try:
        not_before = iso_utc(leaf.not_valid_before_utc)
        not_after = iso_utc(leaf.not_valid_after_utc)
    except ValueError as e:
        raise ValueError(f"certificate validity cannot be read: {e}") from None
    return Cert(
        subject=_name(leaf.subject),
        issuer=_name(leaf.issuer),
        sans=_sans(leaf),
        not_before=not_before,
        not_after=not_after,
        sha256=hashlib.sha256(chain[0]).hexdigest(),
        chain=[_summary(der) for der in chain],
    )


def expiring(cert: Cert, now: datetime, days: int) -> bool:
    """Whether ``cert`` has expired at ``now`` or will within ``days`` days (``now`` naive is
    taken as UTC). Raises ``ValueError`` when ``cert.not_after`` is not an ISO time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return parse_time(cert.not_after, "not_after") <= now + timedelta(days=days)


def cert_changes(old: Cert | None, new: Cert | None) -> list[str]:
    """What differs from ``old`` to ``new``: ``added`` or ``removed`` when one side has no
    certificate, else any of ``fingerprint``, ``subject``, ``issuer``, ``sans`` (compared as
    sets), ``validity`` (either date) and ``chain`` (the fingerprints the server sent), in
    that order; ``[]`` when nothing did."""
    if old is None or new is None:
        return [] if old is new else ["added" if old is None else "removed"]
    changed = []
    if old.sha256.lower() != new.sha256.lower():
        changed.append("fingerprint")
    if old.subject != new.subject:
        changed.append("subject")
    if old.issuer != new.issuer:
        changed.append("issuer")
    if set(old.sans) != set(new.sans):
        changed.append("sans")
    if (old.not_before, old.not_after) != (new.not_before, new.not_after):
        changed.append("validity")
    if [c.get("sha256", "").lower() for c in old.chain] != [
        c.get("sha256", "").lower() for c in new.chain
    ]:
        changed.append("chain")
    return changed
