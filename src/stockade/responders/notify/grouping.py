"""What a channel sends now, what it groups and what waits (pure: times are passed in).

**Grouping.** A window opens when a channel has something to send and lasts ``window``
seconds. The first ``threshold`` items in it go out at once, one message each; once more
arrive, the rest are held and, when the window closes, go out as one summary. So a quiet host
gets each alert without delay, and a burst costs at most ``threshold + 1`` messages a window.
A window of 0 sends every item alone. The window's state (:meth:`Grouper.state`) is kept in the
store by the daemon and given back after a restart (:meth:`Grouper.restore`), so a restart
during a burst does not grant another ``threshold`` single messages.

**Rate cap.** A token bucket of ``limit`` messages a ``period``. When the planned messages
outnumber the tokens, the last token carries everything left as one summary; with no token,
everything waits (nothing is dropped).

**Retries.** A failed delivery is tried again after ``backoff(attempts)``: ``minimum``
doubling up to ``maximum``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Grouper:
    """The grouping window of one channel."""

    def __init__(self, window: float, threshold: int) -> None:
        self.window = window
        self.threshold = threshold
        self.window_end: float | None = None
        self.sent = 0

    @property
    def holding(self) -> bool:
        return self.window_end is not None and self.sent >= self.threshold

    def plan(self, due: Sequence[T], now: float) -> list[list[T]]:
        """The messages to send now, each a list of items; items left out wait."""
        if self.window <= 0:
            return [[item] for item in due]
        if self.window_end is not None and now >= self.window_end:
            holding = self.holding
            self.window_end, self.sent = None, 0
            if holding and due:
                return [list(due)]  # what the window held (and anything just arrived)
        if not due:
            return []
        if self.window_end is None:
            self.window_end, self.sent = now + self.window, 0
        room = max(self.threshold - self.sent, 0)
        alone = list(due[:room])
        self.sent += len(alone)
        if len(due) > room:
            self.sent = max(self.sent, self.threshold)  # from now on: held for the summary
        return [[item] for item in alone]

    def state(self) -> str:
        """The window as text to keep: its end (wall-clock) and the messages sent alone."""
        return json.dumps({"window_end": self.window_end, "sent": self.sent})

    def restore(self, text: str | None, now: float) -> bool:
        """Take up a window :meth:`state` kept; False (and a fresh window) if ``text`` is not
        one. A window longer than the configured one (the setting was lowered) ends at
        ``now + window``."""
        self.window_end, self.sent = None, 0
        if text is None:
            return True
        try:
            data = json.loads(text)
            end, sent = data["window_end"], data["sent"]
        except (ValueError, TypeError, KeyError):
            return False
        if end is None and sent == 0:
            return True
        valid_end = (
            isinstance(end, int | float) and not isinstance(end, bool) and math.isfinite(end)
        )
        if not valid_end or not isinstance(sent, int) or isinstance(sent, bool) or sent < 0:
            return False
        self.window_end, self.sent = min(float(end), now + self.window), sent
        return True

    def next_wakeup(self) -> float | None:
        """When held items are due to go out as a summary."""
        return self.window_end if self.holding else None


class RateBucket:
    """A token bucket: ``limit`` messages a ``period`` (0 = no cap)."""

    def __init__(self, limit: int, period: float, now: float) -> None:
        self.limit = limit
        self.period = period
        self.tokens = float(limit)
        self.stamp = now

    def available(self, now: float) -> int | None:
        """Whole tokens now; None when there is no cap."""
        if self.limit <= 0:
            return None
        if self.period > 0:
            self.tokens = min(
                float(self.limit), self.tokens + (now - self.stamp) * self.limit / self.period
            )
        self.stamp = max(self.stamp, now)
        return int(self.tokens)

    def take(self, n: int) -> None:
        if self.limit > 0:
            self.tokens -= n


def cap(messages: list[list[T]], budget: int | None) -> list[list[T]]:
    """At most ``budget`` messages: the overflow joins the last one (None: no cap)."""
    if budget is None or len(messages) <= budget:
        return messages
    if budget <= 0:
        return []
    head = messages[: budget - 1]
    tail = [item for m in messages[budget - 1 :] for item in m]
    return [*head, tail]


def backoff(attempts: int, minimum: float, maximum: float) -> float:
    """The pause before the next try after ``attempts`` failures (1 or more)."""
    if attempts <= 0:
        return 0.0
    return min(minimum * 2.0 ** min(attempts - 1, 60), maximum)
