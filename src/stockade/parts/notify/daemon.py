"""The notify part inside ``stockade run``: follow the alerts, route them, deliver them.

**Routing.** A cursor in the store (``notify.cursor``, the id of the last alert looked at)
follows the alerts table, so alerts from every part and from CLI commands are seen. Each new
alert is routed to the channels that want it: an outbox row per (channel, alert), written in
the same transaction as the cursor moves. A crash leaves both or neither, so no alert is lost or
routed twice. On the very first start the cursor begins at the newest stored alert: the
history is not sent.

**Delivery.** Each channel has its own task: it reads its due rows from the outbox, groups them
and caps their rate (:mod:`stockade.responders.notify.grouping`), sends, and marks the rows sent,
or counts the failure and schedules the next try with exponential backoff. Nothing is dropped: a
row that failed ``max_attempts`` times is logged as an error and kept, still retried every
``retry_max``; ``stockade notify queue`` shows it. Store work runs on the part's one worker
thread.

**Grouping across restarts.** Each channel's grouping window is kept in the store
(``notify.group.CHANNEL``) whenever it changes, before the messages it allowed are sent: a
restart (or a crash) during a burst takes the window up again, so no more than
``group_threshold`` single messages go out in it in total.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stockade.config.schema import ChannelConfig
from stockade.context import Context
from stockade.parts.base import WorkerThread
from stockade.responders.notify.channels import make_channel
from stockade.responders.notify.channels.base import Channel, DeliveryError
from stockade.responders.notify.grouping import Grouper, RateBucket, backoff, cap
from stockade.responders.notify.message import build
from stockade.responders.notify.routing import routes
from stockade.store.base import OutboxItem, Store

log = logging.getLogger("stockade.notify")
T = TypeVar("T")

CURSOR = "notify.cursor"
#: the grouping window of a channel, by name
GROUP_STATE = "notify.group.{}"
#: due rows read at once per channel (a summary can cover them all)
BATCH = 50_000


class NotifyPart:
    name = "notify"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.notify
        self._store: Store | None = None
        self._worker: WorkerThread | None = None

    # -- on the worker thread --------------------------------------------------------------

    def _open(self) -> None:
        self._store = self.ctx.open_store()
        if self._store.get_state(CURSOR) is None:
            newest = self._store.list_alerts(limit=100)
            start = max((a.id or 0 for a in newest), default=0)
            self._store.set_state(CURSOR, str(start))
            log.info("notify: first start; alerts stored before now are not sent")
        gone = self._store.prune_notifications(time.time() - self.cfg.keep_sent)
        if gone:
            log.info("notify: pruned %d delivered notifications", gone)
        names = {c.name for c in self.cfg.channels}
        orphans = {i.channel for i in self._store.list_notifications() if i.channel not in names}
        for name in sorted(orphans):
            log.warning(
                "notify: the outbox holds undelivered notifications for channel %r, which the "
                "configuration no longer has; they wait until it is back (stockade notify queue)",
                name,
            )

    def _route(self) -> int:
        assert self._store is not None
        cursor = int(self._store.get_state(CURSOR) or 0)
        alerts = self._store.list_alerts(after_id=cursor)
        if not alerts:
            return 0
        newest = max(a.id or 0 for a in alerts)
        found = routes(alerts, self.cfg.channels)
        self._store.route_alerts(found, now=time.time(), state={CURSOR: str(newest)})
        return len(found)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _due(self, channel: str, now: float) -> list[OutboxItem]:
        assert self._store is not None
        return self._store.due_notifications(channel, now=now, limit=BATCH)

    def _sent(self, ids: list[int], when: float) -> None:
        assert self._store is not None
        self._store.mark_sent(ids, when=when)

    def _failed(self, ids: list[int], error: str, next_try: float) -> None:
        assert self._store is not None
        self._store.mark_failed(ids, error=error, next_try=next_try)

    def _get_state(self, key: str) -> str | None:
        assert self._store is not None
        return self._store.get_state(key)

    def _set_state(self, key: str, value: str) -> None:
        assert self._store is not None
        self._store.set_state(key, value)

    # -- on the event loop -----------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._worker is not None
        return await self._worker.call(fn, *args)

    async def _router(self) -> None:
        while True:
            n = await self._call(self._route)
            if n:
                log.debug("notify: routed %d notifications", n)
            await asyncio.sleep(self.cfg.poll)

    async def _channel(self, cfg: ChannelConfig) -> None:
        channel = make_channel(cfg, self.ctx.host)
        grouper = Grouper(cfg.group_window, cfg.group_threshold)
        key = GROUP_STATE.format(cfg.name)
        kept = await self._call(self._get_state, key)
        if not grouper.restore(kept, time.time()):
            log.warning(
                "notify %s: the kept grouping window %r is unreadable; a new one starts",
                cfg.name,
                kept,
            )
        saved = grouper.state()
        bucket = RateBucket(cfg.rate_limit, cfg.rate_period, time.time())
        while True:
            now = time.time()
            due = await self._call(self._due, cfg.name, now)
            planned = grouper.plan(due, now)
            if grouper.state() != saved:  # kept before what it allows is sent
                saved = grouper.state()
                await self._call(self._set_state, key, saved)
            batches = cap(planned, bucket.available(now))
            for items in batches:
                bucket.take(1)
                await self._deliver(cfg, channel, items)
            await asyncio.sleep(self.cfg.poll)

    async def _deliver(self, cfg: ChannelConfig, channel: Channel, items: list[OutboxItem]) -> None:
        message = build([i.alert for i in items], self.ctx.host)
        ids = [i.id for i in items]
        try:
            await channel.send(message)
        except DeliveryError as e:
            attempts = max(i.attempts for i in items) + 1
            pause = backoff(attempts, cfg.retry_min, cfg.retry_max)
            await self._call(self._failed, ids, str(e), time.time() + pause)
            if attempts >= cfg.max_attempts:
                log.error(
                    "notify %s: %d alert(s) failed %d times, kept in the outbox and tried "
                    "again in %.0f s: %s",
                    cfg.name,
                    len(ids),
                    attempts,
                    pause,
                    e,
                )
            else:
                log.warning(
                    "notify %s: delivery failed (attempt %d), next try in %.1f s: %s",
                    cfg.name,
                    attempts,
                    pause,
                    e,
                )
            return
        await self._call(self._sent, ids, time.time())
        what = "alert" if len(ids) == 1 else f"summary of {len(ids)} alerts"
        log.info("notify %s: sent %s: %s", cfg.name, what, message.title)

    async def run(self) -> None:
        self._worker = WorkerThread("notify")
        try:
            await self._call(self._open)
            log.info(
                "notify: %d channel(s): %s",
                len(self.cfg.channels),
                ", ".join(c.name for c in self.cfg.channels) or "none",
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._router(), name="notify-router")
                for cfg in self.cfg.channels:
                    group.create_task(self._channel(cfg), name=f"notify-{cfg.name}")
        finally:
            await self._worker.close(self._close)
