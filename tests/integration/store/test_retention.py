"""TRANSCRIPT_RETENTION_DAYS on an injected clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from common.compat import timeout
from tests.integration.store.records import final, session, translation
from transcript_store.repository import ANYONE, TranscriptRepository
from transcript_store.retention import DAY, RetentionPolicy, RetentionTask, apply_retention
from transcript_store.schema import segments, translations
from transcript_store.writer import TranscriptWriter

T0 = 1_700_000_000.0


async def test_sessions_idle_longer_than_the_retention_period_are_deleted(engine: AsyncEngine) -> None:
    now = [T0]
    writer = TranscriptWriter(engine, clock=lambda: now[0])
    await writer.write([session("old", "alice"), final("old", 0), translation("old", 0)])
    await writer.write([session("active", "alice"), final("active", 0)])
    now[0] = T0 + 6 * DAY
    await writer.write([final("active", 1)])  # still being written: its age starts again
    now[0] = T0 + 8 * DAY
    await writer.write([session("new", "alice"), final("new", 0)])

    clock = [T0 + 8 * DAY]
    task = RetentionTask(engine, RetentionPolicy(days=7), interval=0.05, clock=lambda: clock[0])
    repo = TranscriptRepository(engine)
    runner = asyncio.create_task(task.run())
    try:
        async with timeout(30):
            await task.ran.wait()  # the first pass runs at once
        assert task.deleted == 1
        assert {s.session_id for s in (await repo.list_sessions(ANYONE)).sessions} == {"active", "new"}
        # The schedule goes on: once the clock passes the active session's period, a later pass takes it.
        clock[0] = T0 + 13.5 * DAY
        async with timeout(30):
            while task.deleted < 2:
                task.ran.clear()
                await task.ran.wait()
    finally:
        runner.cancel()
    assert task.runs >= 2 and task.deleted == 2
    assert {s.session_id for s in (await repo.list_sessions(ANYONE)).sessions} == {"new"}
    async with engine.connect() as connection:
        for table in (segments, translations):
            orphans = await connection.execute(sa.select(sa.func.count()).select_from(table)
                                               .where(table.c.session_id == "old"))
            assert orphans.scalar_one() == 0


async def test_zero_days_keeps_everything(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: T0)
    await writer.write([session("s", None), final("s", 0)])
    assert RetentionPolicy(days=0).cutoff(T0 + 10_000 * DAY) is None
    assert await apply_retention(engine, RetentionPolicy(days=0), T0 + 10_000 * DAY) == 0
    assert await TranscriptRepository(engine).get_session(ANYONE, "s") is not None
