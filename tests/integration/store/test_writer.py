"""The idempotent writer on SQLite and PostgreSQL: a redelivered record writes nothing twice."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.store.records import final, session, translation
from transcript_store.repository import ANYONE, TranscriptRepository
from transcript_store.schema import segments, sessions, translations
from transcript_store.writer import TranscriptWriter


async def _count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_batch_written_once_however_often_it_is_delivered(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    batch = [session("s1", "alice"), final("s1", 0, words=True), final("s1", 1), translation("s1", 0),
             translation("s1", 0, "fr"), translation("s1", 1)]
    first = await writer.write(batch)
    assert (first.segments, first.translations, first.duplicates) == (2, 3, 0)
    again = await writer.write(batch)
    assert (again.segments, again.translations, again.duplicates) == (0, 0, 5)
    # Duplicates inside one batch too (a reclaimed entry next to its first delivery).
    inside = await writer.write([final("s1", 2), final("s1", 2), translation("s1", 2), translation("s1", 2)])
    assert (inside.segments, inside.translations) == (1, 1)
    assert await _count(engine, sessions) == 1
    assert await _count(engine, segments) == 3
    assert await _count(engine, translations) == 4
    transcript = await TranscriptRepository(engine).get_transcript(ANYONE, "s1", translation="de")
    assert transcript is not None
    assert [s.text for s in transcript.segments] == ["utterance 0 of s1", "utterance 1 of s1", "utterance 2 of s1"]
    assert transcript.segments[0].words == [{"word": "utterance", "start": 0.0, "end": 0.5, "probability": 0.9}]
    assert transcript.segments[0].worker == "stt-test-0" and transcript.segments[0].language == "en"
    assert [s.translation for s in transcript.segments] == ["[de] utterance 0", "[de] utterance 1", "[de] utterance 2"]


async def test_the_first_owner_sticks(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    # A final may arrive before its session's record: the session exists, owned by nobody yet.
    await writer.write([final("s1", 0)])
    repo = TranscriptRepository(engine)
    assert await repo.get_session("alice", "s1") is None
    await writer.write([session("s1", "alice", created_at=4000.0)])
    owned = await repo.get_session("alice", "s1")
    assert owned is not None and owned.created_at == 4000.0 and owned.target_language == "de"
    assert owned.segments == 1
    # A later record naming someone else cannot take it over.
    await writer.write([session("s1", "mallory")])
    assert await repo.get_session("mallory", "s1") is None
    assert await repo.get_session("alice", "s1") is not None


async def test_records_of_a_deleted_session_do_not_bring_it_back(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    repo = TranscriptRepository(engine)
    await writer.write([session("s1", "alice"), final("s1", 0)])
    assert await repo.delete_session("alice", "s1", now=5001.0)
    late = await writer.write([final("s1", 1), translation("s1", 0)])
    assert late.dropped == 2 and late.segments == 0
    assert await _count(engine, sessions) == 0 and await _count(engine, segments) == 0
