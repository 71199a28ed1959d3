"""Ed25519 signatures over baseline versions, so a tampered baseline is refused.

What is signed is a short message naming the part, the version number, its metadata, the
number of entries and a SHA-256 digest over all entries in key order. Verification recomputes
the digest from what the store holds: changing, adding or removing a single entry, or rolling
the version number, breaks the signature.

The private key is a PKCS#8 PEM file readable by root only, optionally encrypted with a
passphrase; the public key sits beside it. Checking needs only the public key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stockade.errors import IntegrityError, StockadeError

_DOMAIN = b"stockade baseline v1\0"


class EntryDigest:
    """Streaming digest over (key, text) pairs; feed them in key order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.count = 0

    def add(self, key: bytes, text: str) -> None:
        data = text.encode()
        self._h.update(len(key).to_bytes(4, "big") + key + len(data).to_bytes(4, "big") + data)
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def digest_entries(entries: Iterable[tuple[bytes, str]]) -> tuple[str, int]:
    """Digest and count of entries given in key order."""
    d = EntryDigest()
    for key, text in entries:
        d.add(key, text)
    return d.hexdigest(), d.count


def signed_message(part: str, version: int, meta: str, entries: int, digest: str) -> bytes:
    return b"\0".join(
        (
            _DOMAIN,
            part.encode(),
            str(version).encode(),
            meta.encode(),
            str(entries).encode(),
            digest.encode(),
        )
    )


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


@dataclass(frozen=True)
class Verifier:
    public: Ed25519PublicKey
    path: Path

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def public_path(private_path: Path) -> Path:
    return private_path.with_suffix(".pub")


def create_key(private_path: Path, passphrase: bytes | None) -> Signer:
    """Create a key pair; the private key is written with mode 0600."""
    key = Ed25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public_path(private_path).write_bytes(pub)
    except OSError as e:
        raise StockadeError(
            f"{private_path}: cannot write the signing key: {e.strerror}; "
            "choose another place with files.signing_key"
        ) from None
    return Signer(key)


def load_signer(private_path: Path, passphrase: bytes | None) -> Signer:
    try:
        pem = private_path.read_bytes()
    except FileNotFoundError:
        raise StockadeError(
            f"{private_path}: signing key not found; it is made by `stockade files init`"
        ) from None
    except OSError as e:
        raise StockadeError(f"{private_path}: cannot read the signing key: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:
        raise StockadeError(
            f"{private_path}: the signing key is protected by a passphrase; set "
            "STOCKADE_PASSPHRASE, files.passphrase_file, or use --ask-passphrase"
        ) from None
    except ValueError:
        raise StockadeError(
            f"{private_path}: cannot load the signing key (wrong passphrase or damaged file)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StockadeError(f"{private_path}: not an Ed25519 private key")
    return Signer(key)


def load_verifier(private_path: Path) -> Verifier:
    path = public_path(private_path)
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise IntegrityError(
            f"{path}: cannot read the baseline's public key ({e.strerror}); "
            "refusing to trust the baseline"
        ) from None
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise IntegrityError(
            f"{path}: the baseline's public key is damaged; refusing to trust the baseline"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError(f"{path}: not an Ed25519 public key; refusing to trust the baseline")
    return Verifier(key, path)
