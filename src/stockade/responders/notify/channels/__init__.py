"""The notification channels, one module each, behind :class:`base.Channel`."""

from __future__ import annotations

from stockade.config.schema import (
    CommandChannel,
    EmailChannel,
    SyslogChannel,
    WebhookChannel,
)
from stockade.responders.notify.channels.base import Channel


def make_channel(
    cfg: SyslogChannel | EmailChannel | WebhookChannel | CommandChannel, host: str
) -> Channel:
    """The channel a configuration entry describes."""
    if isinstance(cfg, SyslogChannel):
        from stockade.responders.notify.channels.syslog import SyslogSender

        return SyslogSender(cfg, host)
    if isinstance(cfg, EmailChannel):
        from stockade.responders.notify.channels.email import EmailSender

        return EmailSender(cfg)
    if isinstance(cfg, WebhookChannel):
        from stockade.responders.notify.channels.webhook import WebhookSender

        return WebhookSender(cfg)
    from stockade.responders.notify.channels.command import CommandSender

    return CommandSender(cfg)
