"""Writes a batch of ``transcripts`` records in one transaction, idempotently.

Unique keys make a redelivered entry harmless, not luck: a final is keyed by
``(session_id, segment_id)`` and a translation by ``(session_id, segment_id, target_language)``,
and both are inserted with ``ON CONFLICT DO NOTHING``. A session row is upserted: the first
subject it is given sticks (``COALESCE``), so neither a final that arrives before its session's
record nor a replayed record can change who owns it. Records of a deleted session are dropped
(``deleted_sessions``), so a result still on its way does not bring the session back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common import bus
from transcript_store.schema import deleted_sessions, segments, sessions, translations

Clock = Callable[[], float]
SESSION_CHUNK = 500  # 7 parameters a row: far below SQLite's 32766


@dataclass(frozen=True)
class WriteResult:
    """Rows a batch inserted, and the records it left alone (already there, or deleted)."""

    segments: int = 0
    translations: int = 0
    duplicates: int = 0
    dropped: int = 0


def dialect_insert(connection: AsyncConnection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``/``on_conflict_do_update``."""
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


def _session_update(new: Any) -> dict[str, Any]:
    """What a session row takes from a newer record of it."""
    return {
        # The first owner sticks: a later record cannot hand the session to someone else.
        "subject": sa.func.coalesce(sessions.c.subject, new.subject),
        "source_language": sa.func.coalesce(new.source_language, sessions.c.source_language),
        "target_language": sa.func.coalesce(new.target_language, sessions.c.target_language),
        "gateway": sa.func.coalesce(sa.func.nullif(new.gateway, ""), sessions.c.gateway),
        "created_at": sa.case(
            (new.created_at < sessions.c.created_at, new.created_at), else_=sessions.c.created_at
        ),
        "updated_at": sa.case(
            (new.updated_at > sessions.c.updated_at, new.updated_at), else_=sessions.c.updated_at
        ),
    }


class TranscriptWriter:
    def __init__(self, engine: AsyncEngine, clock: Clock = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def write(self, records: Sequence[bus.TranscriptRecord]) -> WriteResult:
        """Commit every record or none (the caller acknowledges only after this returns)."""
        if not records:
            return WriteResult()
        async with self.engine.begin() as connection:
            return await self._write(connection, records)

    async def _write(self, connection: AsyncConnection, records: Sequence[bus.TranscriptRecord]) -> WriteResult:
        now = self.clock()
        ids = sorted({r.session_id for r in records})
        gone = set(
            (await connection.execute(
                sa.select(deleted_sessions.c.session_id).where(deleted_sessions.c.session_id.in_(ids))
            )).scalars()
        )
        kept = [r for r in records if r.session_id not in gone]
        dropped = len(records) - len(kept)
        if not kept:
            return WriteResult(dropped=dropped)
        await self._upsert_sessions(connection, kept, now)
        finals = [r for r in kept if isinstance(r, bus.FinalResult)]
        texts = [r for r in kept if isinstance(r, bus.TranslationResult)]
        seg_rows = {
            (f.session_id, f.segment_id): {
                "session_id": f.session_id, "segment_id": f.segment_id, "utterance_index": f.utterance_index,
                "text": f.text, "language": f.language, "language_probability": f.language_probability,
                "start_seconds": f.start, "end_seconds": f.end,
                "words": [w.model_dump() for w in f.words] if f.words is not None else None,
                "worker": f.worker, "created_at": now,
            }
            for f in finals
        }
        tr_rows = {
            (t.session_id, t.segment_id, t.target_language): {
                "session_id": t.session_id, "segment_id": t.segment_id, "utterance_index": t.utterance_index,
                "target_language": t.target_language, "source_language": t.source_language, "text": t.text,
                "worker": t.worker, "created_at": now,
            }
            for t in texts
        }
        inserted_segments = await self._insert_new(
            connection, segments, list(seg_rows.values()), ["session_id", "segment_id"]
        )
        inserted_translations = await self._insert_new(
            connection, translations, list(tr_rows.values()), ["session_id", "segment_id", "target_language"]
        )
        duplicates = len(finals) + len(texts) - inserted_segments - inserted_translations
        return WriteResult(inserted_segments, inserted_translations, duplicates, dropped)

    async def _upsert_sessions(
        self, connection: AsyncConnection, records: Sequence[bus.TranscriptRecord], now: float
    ) -> None:
        rows: dict[str, dict[str, Any]] = {}
        for r in records:
            row = rows.setdefault(r.session_id, {
                "session_id": r.session_id, "subject": None, "source_language": None, "target_language": None,
                "gateway": "", "created_at": now, "updated_at": now,
            })
            if isinstance(r, bus.SessionInfo):  # the latest record of the batch gives the languages
                row.update(
                    subject=row["subject"] or r.subject, source_language=r.source_language,
                    target_language=r.target_language, gateway=r.gateway,
                    created_at=min(row["created_at"], r.created_at),
                )
        # Multi-row statements (one row per session, so no row is hit twice in one), in chunks
        # that stay under SQLite's limit of bound parameters.
        values = list(rows.values())
        for at in range(0, len(values), SESSION_CHUNK):
            stmt = dialect_insert(connection, sessions).values(values[at:at + SESSION_CHUNK])
            await connection.execute(stmt.on_conflict_do_update(
                index_elements=[sessions.c.session_id], set_=_session_update(stmt.excluded)
            ))

    async def _insert_new(
        self, connection: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]], key: list[str]
    ) -> int:
        """Insert the rows whose key is new; returns how many were."""
        if not rows:
            return 0
        stmt = dialect_insert(connection, table).on_conflict_do_nothing(index_elements=key).returning(table.c.id)
        result = await connection.execute(stmt, rows)
        return len(result.all())
