"""Run a part forever: log its failures and restart it with a growing pause."""

from __future__ import annotations

import asyncio
import logging
import time

from stockade.parts.base import Part

log = logging.getLogger("stockade")

MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: a part that ran this long before failing starts again without delay growth
HEALTHY_AFTER = 120.0


async def supervise(
    part: Part, *, min_backoff: float = MIN_BACKOFF, max_backoff: float = MAX_BACKOFF
) -> None:
    backoff = min_backoff
    restarts = 0
    while True:
        started = time.monotonic()
        try:
            await part.run()
            log.warning("%s: stopped by itself; starting it again", part.name)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error(
                "%s: failed: %s: %s",
                part.name,
                type(e).__name__,
                e,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
        if time.monotonic() - started > HEALTHY_AFTER:
            backoff = min_backoff
        restarts += 1
        log.info("%s: restart %d in %.0f s", part.name, restarts, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)
