"""Where the instance's baseline signing key lives and how its passphrase is found.

One key signs every baseline of an instance — files, listeners, scan groups. It is made by the
first baseline that needs it (`stockade files init`, or the first listener or scan baseline).
"""

from __future__ import annotations

import os
from pathlib import Path

from stockade.baseline.signing import (
    Signer,
    Verifier,
    create_key,
    load_signer,
    load_verifier,
    public_path,
)
from stockade.context import Context
from stockade.errors import IntegrityError, StockadeError

PASSPHRASE_ENV = "STOCKADE_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


class KeyRing:
    """The baseline key pair of one stockade instance (its place is set in the files section:
    ``files.signing_key``, ``files.passphrase_file``, ``files.public_key_fingerprint``)."""

    def __init__(self, ctx: Context, passphrase: bytes | None = None) -> None:
        files = ctx.config.files
        self.private_path = (
            Path(files.signing_key) if files.signing_key else ctx.state_dir / "keys" / "files.key"
        )
        self._passphrase = passphrase
        self._passphrase_file = files.passphrase_file
        self._pinned = files.public_key_fingerprint.strip().lower()

    @property
    def exists(self) -> bool:
        return self.private_path.exists() or public_path(self.private_path).exists()

    def passphrase(self) -> bytes | None:
        if self._passphrase is not None:
            return self._passphrase
        env = os.environ.get(PASSPHRASE_ENV)
        if env:
            return env.encode()
        if self._passphrase_file:
            try:
                return Path(self._passphrase_file).read_bytes().rstrip(b"\r\n")
            except OSError as e:
                raise StockadeError(
                    f"{self._passphrase_file}: cannot read files.passphrase_file: {e.strerror}"
                ) from None
        return None

    def signer(self, *, create: bool = False) -> tuple[Signer, bool]:
        """The signing key; with ``create``, make one when there is none. Returns (key, made)."""
        if not self.private_path.exists():
            if public_path(self.private_path).exists():
                raise StockadeError(
                    f"{self.private_path}: the signing key is missing but its public key exists; "
                    "restore the key, or remove both to start a new baseline"
                )
            if not create:
                raise StockadeError(
                    f"{self.private_path}: no signing key; run `stockade files init`"
                )
            try:
                return create_key(self.private_path, self.passphrase()), True
            except StockadeError:
                if not self.private_path.exists():
                    raise
                # another part of this instance made it a moment ago: use that one
        return load_signer(self.private_path, self.passphrase()), False

    def verifier(self) -> Verifier:
        v = load_verifier(self.private_path)
        if self._pinned and v.key_id != self._pinned:
            raise IntegrityError(
                f"{v.path}: public key {v.key_id} is not the pinned files.public_key_fingerprint "
                f"{self._pinned}; refusing to trust the baseline"
            )
        return v
