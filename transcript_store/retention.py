"""``TRANSCRIPT_RETENTION_DAYS``: sessions idle longer than that are deleted, on a schedule.

A session's age is counted from its last write (``updated_at``), so a long session is kept
as a whole until it has been quiet for the retention period. Deletion goes in bounded
batches, each its own transaction, so it never holds a long lock against the writer. The
clock is injected: the tests move it instead of waiting days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from transcript_store.repository import delete_sessions
from transcript_store.schema import deleted_sessions, sessions

log = logging.getLogger(__name__)

DAY = 86400.0
# A tombstone only needs to outlive entries still on their way (reclaims, redeliveries).
TOMBSTONE_SECONDS = 7 * DAY
BATCH = 500

EXPIRED = Counter("store_retention_deleted_sessions_total", "Sessions deleted by the retention policy")


@dataclass(frozen=True)
class RetentionPolicy:
    days: float  # 0 keeps everything

    def cutoff(self, now: float) -> float | None:
        """Sessions last written before this are expired; None when nothing expires."""
        return now - self.days * DAY if self.days > 0 else None


async def apply_retention(engine: AsyncEngine, policy: RetentionPolicy, now: float) -> int:
    """Delete the expired sessions (and old tombstones); returns how many sessions went."""
    deleted = 0
    cutoff = policy.cutoff(now)
    while cutoff is not None:
        async with engine.begin() as connection:
            ids = list((await connection.execute(
                sa.select(sessions.c.session_id).where(sessions.c.updated_at < cutoff).limit(BATCH)
            )).scalars())
            deleted += await delete_sessions(connection, ids)
        if len(ids) < BATCH:
            break
    async with engine.begin() as connection:
        old = deleted_sessions.c.deleted_at < now - TOMBSTONE_SECONDS
        await connection.execute(sa.delete(deleted_sessions).where(old))
    if deleted:
        EXPIRED.inc(deleted)
        log.info("retention: deleted %d sessions idle for more than %g days", deleted, policy.days)
    return deleted


class RetentionTask:
    """Applies the policy now and then every ``interval`` seconds until cancelled."""

    def __init__(
        self, engine: AsyncEngine, policy: RetentionPolicy, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.interval = interval
        self.clock = clock
        self.runs = 0
        self.deleted = 0
        self.ran = asyncio.Event()  # set after each pass (tests wait on it)

    async def run_once(self) -> int:
        deleted = await apply_retention(self.engine, self.policy, self.clock())
        self.runs += 1
        self.deleted += deleted
        self.ran.set()
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention pass failed; retrying in %.0fs", self.interval)
            await asyncio.sleep(self.interval)
