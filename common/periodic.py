"""A step repeated every ``interval`` seconds until a stop event: heartbeats and pollers.

The loop ends on its event, not on cancellation alone. Such a loop must survive Redis errors
(it logs them and tries again), and a cancellation that lands inside redis-py's connect
retry can come back out as one of those errors: CI caught a heartbeat, cancelled during a
test's teardown, that stayed "cancelling" at its next sleep for 300 s, since its ``stop``
waited for it without a bound. :func:`stop_task` therefore sets the event, cancels, and waits
a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from common.redis_conn import RETRYABLE

log = logging.getLogger(__name__)

#: How long a stopping service waits for one of its loops to notice.
STOP_SECONDS = 2.0


async def repeat(step: Callable[[], Awaitable[object]], interval: float, stop: asyncio.Event, *,
                 what: str, level: int = logging.DEBUG) -> None:
    """``step()`` now and then every ``interval`` seconds until ``stop`` is set. A Redis error
    is logged at ``level`` and the next step comes an interval later."""
    while not stop.is_set():
        try:
            await step()
        except RETRYABLE as exc:
            log.log(level, "%s failed: %r", what, exc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def stop_task(task: asyncio.Task[None] | None, stop: asyncio.Event, *, what: str) -> None:
    """Set ``stop``, cancel ``task`` and wait for it at most :data:`STOP_SECONDS`; a task still
    running then is left to end on its event (logged)."""
    stop.set()
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
    if not done:
        log.warning("%s did not stop within %.0fs; it ends at its next step", what, STOP_SECONDS)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s ended with an error", what, exc_info=exc)
