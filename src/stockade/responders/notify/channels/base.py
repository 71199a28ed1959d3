"""What a channel looks like: a name and one coroutine that delivers a message or raises."""

from __future__ import annotations

import ssl
from typing import Protocol

from stockade.responders.notify.message import Message


class DeliveryError(Exception):
    """A message could not be delivered; the text says where and why (one line)."""


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""
        ...


def tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context that verifies the server: against ``ca_file``, or the system's CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise DeliveryError(f"cannot read the CA file {ca_file}: {e}") from None
