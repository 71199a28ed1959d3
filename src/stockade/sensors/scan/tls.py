"""TLS handshakes that fetch a server's certificate chain (directly here; after an in-protocol
upgrade in :mod:`~stockade.sensors.scan.starttls`).

Nothing is verified — the point is to see what the server presents, expired, self-signed or
not — and old protocol versions and ciphers are allowed so that legacy servers still show their
certificate. The SNI is the host name the target was given by (none for an address). The chain
is the one the server sent, leaf first: Python 3.13's ``get_unverified_chain()`` or, on 3.11 and
3.12, the same call on the private ``_sslobj``; where neither exists only the leaf is known
(``getpeercert(binary_form=True)``). Decoding is :mod:`~stockade.sensors.scan.certs`' job.
"""

from __future__ import annotations

import ssl
from typing import Any

#: Ports where TLS starts at once: HTTPS, SMTPS, LDAPS, DNS over TLS, IMAPS, POP3S, SIP-TLS.
TLS_PORTS = (443, 465, 636, 853, 993, 995, 5061, 8443)
_DER = 2  # _ssl.ENCODING_DER


def client_context() -> ssl.SSLContext:
    """A client context that accepts any certificate and any protocol OpenSSL still has."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):  # a build without the legacy parts: keep its defaults
        pass
    return ctx


def peer_chain(sslobj: Any) -> tuple[list[bytes], bool]:
    """The DER certificates the peer sent, leaf first, and whether that is the whole chain
    (``False``: only the leaf could be read). ``sslobj`` is an ``ssl.SSLObject`` or
    ``ssl.SSLSocket`` after the handshake."""
    for owner in (sslobj, getattr(sslobj, "_sslobj", None)):
        get = getattr(owner, "get_unverified_chain", None)
        if get is None:
            continue
        chain = get() or []
        return [c if isinstance(c, bytes) else c.public_bytes(_DER) for c in chain], True
    leaf = sslobj.getpeercert(binary_form=True)
    return ([leaf] if leaf else []), False
