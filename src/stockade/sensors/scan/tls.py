"""TLS handshakes that fetch a server's certificate chain, directly or after SMTP's STARTTLS.

Nothing is verified — the point is to see what the server presents, expired, self-signed or
not — and old protocol versions and ciphers are allowed so that legacy servers still show their
certificate. The SNI is the host name the target was given by (none for an address). The chain
is the one the server sent, leaf first: Python 3.13's ``get_unverified_chain()`` or, on 3.11 and
3.12, the same call on the private ``_sslobj``; where neither exists only the leaf is known
(``getpeercert(binary_form=True)``). Decoding is :mod:`~stockade.sensors.scan.certs`' job.

STARTTLS is used on SMTP (ports 25 and 587, or any port greeting with ``220 … SMTP``): ``EHLO``,
then ``STARTTLS`` when offered, then ``QUIT`` over TLS — no mail is ever started.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any

from stockade.sensors.scan.banner import Conversation, Waits, read_some

#: Ports where TLS starts at once: HTTPS, SMTPS, LDAPS, DNS over TLS, IMAPS, POP3S, SIP-TLS.
TLS_PORTS = (443, 465, 636, 853, 993, 995, 5061, 8443)
SMTP_PORTS = frozenset((25, 587))
_DER = 2  # _ssl.ENCODING_DER
_SMTP_GREETING = re.compile(rb"^220[ -][^\r\n]*SMTP", re.IGNORECASE)
_STARTTLS = re.compile(rb"^250[ -]STARTTLS\s*$", re.IGNORECASE | re.MULTILINE)
_FINAL_REPLY = re.compile(rb"(?:^|\n)\d{3} [^\n]*\n")


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


def is_smtp(port: int, greeting: bytes) -> bool:
    """Whether a service greeting ``greeting`` on ``port`` is SMTP (and may offer STARTTLS)."""
    if port in SMTP_PORTS:
        return greeting.startswith(b"220")
    return bool(_SMTP_GREETING.match(greeting))


def offers_starttls(ehlo_reply: bytes) -> bool:
    """Whether an SMTP EHLO reply lists the STARTTLS extension."""
    return bool(_STARTTLS.search(ehlo_reply.replace(b"\r\n", b"\n")))


async def _reply(reader: asyncio.StreamReader, waits: Waits) -> bytes:
    """One SMTP reply (all its lines), or what came before the time-out."""
    buf = b""
    conv = Conversation()
    async with asyncio.timeout(waits.answer):
        while not _FINAL_REPLY.search(buf.replace(b"\r\n", b"\n")):
            got = await read_some(reader, waits.answer, conv, settle=waits.settle, limit=4096)
            if not got:
                break
            buf += got
    return buf


async def smtp_starttls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    server_hostname: str,
    waits: Waits,
) -> tuple[list[bytes], bool] | None:
    """After an SMTP greeting: EHLO, STARTTLS if offered, the handshake, QUIT. Returns the
    chain (as :func:`peer_chain`), or None when the server offers no STARTTLS."""
    writer.write(b"EHLO stockade.invalid\r\n")
    await writer.drain()
    if not offers_starttls(await _reply(reader, waits)):
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return None
    writer.write(b"STARTTLS\r\n")
    await writer.drain()
    if not (await _reply(reader, waits)).startswith(b"220"):
        return None
    await writer.start_tls(
        ctx, server_hostname=server_hostname or None, ssl_handshake_timeout=waits.connect
    )
    chain = peer_chain(writer.get_extra_info("ssl_object"))
    writer.write(b"QUIT\r\n")
    await writer.drain()
    return chain
