"""Reading a signed baseline version back, and replacing a part's whole baseline as one new signed
version — for the parts whose baseline is a set taken in one piece (the listeners, the hosts of a
scan group); the files part writes its own versions entry by entry but verifies them here too.

Every version is signed with the instance's key (:mod:`stockade.baseline.keys`). A version
that is unsigned, signed by another key, or whose entries no longer match its signature was
changed outside stockade: reading it raises :class:`~stockade.errors.IntegrityError`.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from stockade.baseline.keys import KeyRing
from stockade.baseline.signing import EntryDigest, Signer, digest_entries, signed_message
from stockade.errors import IntegrityError
from stockade.model import Alert, Severity
from stockade.store.base import BaselineVersion, Store


def verified_entries(
    store: Store, part: str, keys: KeyRing, version: int | None = None, *, what: str = ""
) -> tuple[BaselineVersion, dict[bytes, str]] | None:
    """The version (current, or ``version``) of ``part`` and its entries, checked against its
    signature; None when there is no such version. ``what`` names the baseline in errors."""
    v = store.baseline_version(part, version)
    if v is None:
        return None
    name = what or f"the {part} baseline"
    if not v.signature:
        raise IntegrityError(
            f"{name} version {v.version} is not signed: the store was modified outside "
            "stockade (or the baseline predates signing); accepting it again signs a new version"
        )
    verifier = keys.verifier()
    if v.key_id != verifier.key_id:
        raise IntegrityError(
            f"{name} version {v.version} was signed by key {v.key_id}, not by "
            f"{verifier.key_id} ({verifier.path}); refusing to use it"
        )
    digest = EntryDigest()
    entries: dict[bytes, str] = {}
    for key, text in store.baseline_entries(part, version):
        digest.add(key, text)
        entries[key] = text
    msg = signed_message(part, v.version, v.meta, digest.count, digest.hexdigest())
    if not verifier.verify(msg, v.signature):
        raise IntegrityError(
            f"{name} version {v.version} fails its signature check: the store was modified "
            "outside stockade; refusing to use it"
        )
    return v, entries


def commit_signed(
    store: Store,
    part: str,
    entries: Mapping[bytes, str],
    changes: Mapping[bytes, str | None],
    signer: Signer,
    *,
    replaced: Container[bytes],
    note: str,
    meta: str,
    keep: int,
) -> int:
    """Store the next version of ``part``: ``entries`` is all of it (what is signed),
    ``changes`` what differs from the current version (what is written). Returns the version."""
    current = store.baseline_version(part)
    version = (current.version if current else 0) + 1
    digest, count = digest_entries(sorted(entries.items()))
    store.commit_baseline(
        part,
        version,
        dict(changes),
        replaced=[k for k in changes if k in replaced],
        note=note,
        meta=meta,
        entries=count,
        digest=digest,
        signature=signer.sign(signed_message(part, version, meta, count, digest)),
        key_id=signer.key_id,
    )
    store.prune_baseline(part, keep)
    return version


def replace_baseline(
    store: Store,
    part: str,
    entries: Mapping[bytes, str],
    signer: Signer,
    *,
    note: str,
    meta: str = "{}",
    keep: int = 20,
) -> tuple[int, int]:
    """Make ``entries`` the next version of ``part``, signed; return (version, entries changed).
    Only the entries that differ are written; the newest ``keep`` versions are kept."""
    base = dict(store.baseline_entries(part)) if store.baseline_version(part) else {}
    changes: dict[bytes, str | None] = {k: t for k, t in entries.items() if base.get(k) != t}
    changes.update({k: None for k in base.keys() - entries.keys()})
    version = commit_signed(
        store, part, entries, changes, signer, replaced=base, note=note, meta=meta, keep=keep
    )
    return version, len(changes)


def tampered_alert(part: str, subject: str, error: IntegrityError, host: str) -> Alert:
    """The critical alert a baseline that fails its check raises."""
    return Alert(
        part=part,
        kind="baseline-tampered",
        subject=subject,
        severity=Severity.CRITICAL,
        detail={"message": str(error)},
        host=host,
    )
