"""A webhook: the message as JSON POSTed to a URL (httpx); ``style = "slack"`` sends the
``{"text": ...}`` payload Slack and Mattermost incoming webhooks take."""

from __future__ import annotations

from typing import Any

import httpx

from stockade.config.schema import WebhookChannel
from stockade.responders.notify.channels.base import DeliveryError, tls_context
from stockade.responders.notify.message import Message


def payload(message: Message, style: str) -> dict[str, Any]:
    if style == "slack":
        return {"text": f"*{message.title}*\n```\n{message.text()}```", "username": "stockade"}
    return message.to_json()


class WebhookSender:
    def __init__(self, cfg: WebhookChannel) -> None:
        self.cfg = cfg
        self.name = cfg.name

    async def send(self, message: Message) -> None:
        verify = tls_context(self.cfg.ca_file) if self.cfg.url.startswith("https:") else True
        headers = {"User-Agent": "stockade", **self.cfg.headers}
        try:
            async with httpx.AsyncClient(
                timeout=self.cfg.timeout, verify=verify, trust_env=False
            ) as client:
                r = await client.post(
                    self.cfg.url, json=payload(message, self.cfg.style), headers=headers
                )
        except httpx.HTTPError as e:
            raise DeliveryError(f"webhook {self.cfg.url}: {type(e).__name__}: {e}") from None
        if not r.is_success:
            raise DeliveryError(
                f"webhook {self.cfg.url}: answered {r.status_code} {r.reason_phrase}"
            )
