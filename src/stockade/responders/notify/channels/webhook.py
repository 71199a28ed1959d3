"""A webhook: the message as JSON POSTed to a URL (httpx); ``style = "slack"`` sends the
``{"text": ...}`` payload Slack and Mattermost incoming webhooks take. Over https, with
``tls_cert``/``tls_key`` the client certificate is presented (mutual TLS)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from stockade.config.schema import WebhookChannel
from stockade.responders.notify.channels.base import DeliveryError
from stockade.responders.notify.channels.tls import tls_context
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
        cfg = self.cfg
        https = cfg.url.startswith("https:")
        verify = tls_context(cfg.ca_file, cfg.tls_cert, cfg.tls_key) if https else True
        headers = {"User-Agent": "stockade", **self.cfg.headers}
        try:
            async with httpx.AsyncClient(
                timeout=self.cfg.timeout, verify=verify, trust_env=False
            ) as client:
                r = await client.post(
                    self.cfg.url, json=payload(message, self.cfg.style), headers=headers
                )
        except (httpx.HTTPError, ssl.SSLError) as e:  # a TLS alert can escape httpx unwrapped
            why = str(e) or "closed without an answer" + (
                " (does the server want a client certificate, tls_cert?)" if https else ""
            )
            raise DeliveryError(f"webhook {self.cfg.url}: {type(e).__name__}: {why}") from None
        if not r.is_success:
            raise DeliveryError(
                f"webhook {self.cfg.url}: answered {r.status_code} {r.reason_phrase}"
            )
