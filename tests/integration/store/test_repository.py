"""What the REST routes read, on SQLite and PostgreSQL: ownership, order, pages, delete."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.store.records import final, session, translation
from transcript_store.repository import ANYONE, BadCursor, TranscriptRepository
from transcript_store.writer import TranscriptWriter


async def test_finals_come_back_in_utterance_order_whatever_order_they_were_written(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    # Finals of one session from several workers arrive out of order, in several batches.
    await writer.write([final("s1", 3), final("s1", 0)])
    await writer.write([final("s1", 2), session("s1", None), final("s1", 1), translation("s1", 1, "fr")])
    transcript = await TranscriptRepository(engine).get_transcript(ANYONE, "s1", translation="fr")
    assert transcript is not None
    assert [s.utterance_index for s in transcript.segments] == [0, 1, 2, 3]
    assert [c.text for c in transcript.cues(translated=True)] == ["[fr] utterance 1"]
    assert transcript.session.segments == 4 and transcript.session.translations == ("fr",)
    assert transcript.session.duration_seconds == 7.5


async def test_a_subject_sees_only_its_own_sessions(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    await writer.write([session("a1", "alice", created_at=1.0), final("a1", 0),
                        session("b1", "bob", created_at=2.0), final("b1", 0)])
    repo = TranscriptRepository(engine)
    assert [s.session_id for s in (await repo.list_sessions("alice")).sessions] == ["a1"]
    assert await repo.get_session("alice", "b1") is None
    assert await repo.get_transcript("alice", "b1") is None
    assert not await repo.delete_session("alice", "b1", now=5001.0)
    assert await repo.get_session("bob", "b1") is not None  # untouched
    assert {s.session_id for s in (await repo.list_sessions(ANYONE)).sessions} == {"a1", "b1"}
    assert await repo.delete_session("bob", "b1", now=5001.0)
    assert await repo.get_session(ANYONE, "b1") is None


async def test_pages_cover_every_session_once_newest_first(engine: AsyncEngine) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    # Two sessions share a creation time: the cursor must still neither skip nor repeat one.
    times = [10.0, 20.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    await writer.write([session(f"s{i}", "alice", created_at=t) for i, t in enumerate(times)])
    repo = TranscriptRepository(engine)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await repo.list_sessions("alice", limit=2, cursor=cursor)
        pages += 1
        seen += [s.session_id for s in page.sessions]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 4
    assert seen == ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]
    with pytest.raises(BadCursor):
        await repo.list_sessions("alice", cursor="not-a-cursor!")
