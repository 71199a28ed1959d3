"""What a channel looks like: a name and one coroutine that delivers a message or raises."""

from __future__ import annotations

from typing import Protocol

from stockade.responders.notify.message import Message


class DeliveryError(Exception):
    """A message could not be delivered; the text says where and why (one line)."""


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise :class:`DeliveryError`."""
        ...
