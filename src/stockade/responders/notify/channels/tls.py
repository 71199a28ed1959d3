"""The TLS client side of the channels: a context that verifies the server and, for mutual
TLS, presents a client certificate.

:func:`client_cert_problem` is also what the configuration check calls, so a missing,
unreadable, encrypted or mismatched certificate/key pair is refused when the configuration is
loaded, not found out at the first delivery.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from stockade.responders.notify.channels.base import DeliveryError


class _EncryptedKey(Exception):
    """Raised by the password callback: stockade never prompts for a key's passphrase."""


def _no_passphrase() -> bytes:
    raise _EncryptedKey


def client_cert_problem(cert: str, key: str) -> tuple[str, str] | None:
    """Why ``cert`` with ``key`` cannot be a client certificate: the setting to fix
    (``tls_cert`` or ``tls_key``) and the reason in one line; None if they can."""
    for setting, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            Path(path).read_bytes()
        except OSError as e:
            return setting, f"cannot read {path}: {e.strerror or e}"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        return "tls_key", f"{key} is encrypted; give an unencrypted key readable by root only"
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            return "tls_key", f"{key} is not the private key of the certificate in {cert}"
        return "tls_cert", f"{cert} with {key}: not a PEM certificate and key ({e.reason or e})"
    return None


def tls_context(ca_file: str, cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file`` (empty: the system's
    CAs) and, given ``cert`` and ``key``, presents that client certificate."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise DeliveryError(f"cannot read the CA file {ca_file}: {e}") from None
    if cert:
        if problem := client_cert_problem(cert, key):
            raise DeliveryError(f"{problem[0]}: {problem[1]}")
        ctx.load_cert_chain(cert, key, password=_no_passphrase)
    return ctx
