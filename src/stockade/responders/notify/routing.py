"""Which channels an alert goes to: its severity against ``min_severity``, its part against
``parts`` (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from stockade.config.schema import ChannelConfig
from stockade.model import Alert, Severity


def wants(channel: ChannelConfig, alert: Alert) -> bool:
    if alert.severity < Severity.parse(channel.min_severity):
        return False
    return not channel.parts or alert.part in channel.parts


def routes(alerts: Sequence[Alert], channels: Sequence[ChannelConfig]) -> list[tuple[str, int]]:
    """(channel name, alert id) for every alert and every channel that wants it."""
    return [(c.name, a.id) for a in alerts if a.id is not None for c in channels if wants(c, a)]
