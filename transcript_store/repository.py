"""Reading and deleting transcripts: what the gateway's REST routes call.

Read-only queries plus one delete, on the same database the store writes (the same
``DATABASE_URL``). Every call takes the caller's ``owner``: with auth on the token subject, and
a session belongs to it only if its ``subject`` is that; with auth off ``ANYONE`` (every session
belongs to the anonymous owner). A session that is not the caller's is reported exactly like
one that does not exist.

Pages are keyset-paginated (newest first) with an opaque cursor, so a page is as cheap at the
end of a long list as at its start and does not shift when sessions are added.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.subtitles import Cue
from transcript_store.schema import deleted_sessions, segments, sessions, translations
from transcript_store.writer import dialect_insert


class _Anyone:
    def __repr__(self) -> str:
        return "ANYONE"


ANYONE: Final = _Anyone()
Owner = str | _Anyone


class BadCursor(ValueError):
    """A pagination cursor this service did not hand out."""


@dataclass(frozen=True)
class SessionSummary:
    session_id: str
    subject: str | None
    created_at: float
    updated_at: float
    source_language: str | None
    target_language: str | None
    segments: int = 0
    duration_seconds: float = 0.0
    translations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "segments": self.segments,
            "duration_seconds": round(self.duration_seconds, 3),
            "translations": list(self.translations),
        }


@dataclass(frozen=True)
class Segment:
    segment_id: str
    utterance_index: int
    text: str
    language: str | None
    language_probability: float | None
    start: float
    end: float
    words: list[dict[str, Any]] | None
    worker: str
    translation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id, "utterance_index": self.utterance_index, "text": self.text,
            "language": self.language, "language_probability": self.language_probability,
            "start": self.start, "end": self.end, "words": self.words, "worker": self.worker,
            "translation": self.translation,
        }


@dataclass(frozen=True)
class Transcript:
    session: SessionSummary
    segments: list[Segment]
    translation: str | None = None

    def cues(self, *, translated: bool = False) -> list[Cue]:
        """Timed cues of the finals, or of their translations (missing ones left out)."""
        if translated:
            return [Cue(s.start, s.end, s.translation) for s in self.segments if s.translation]
        return [Cue(s.start, s.end, s.text) for s in self.segments]


@dataclass(frozen=True)
class Page:
    sessions: list[SessionSummary]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _owned(owner: Owner) -> Any:
    return sa.true() if isinstance(owner, _Anyone) else sessions.c.subject == owner


def encode_cursor(created_at: float, session_id: str) -> str:
    raw = json.dumps([created_at, session_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, session_id = json.loads(raw)
        return float(created_at), str(session_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor("cursor is not one this service handed out") from exc


def _summary(row: Any) -> SessionSummary:
    langs = tuple(sorted(x for x in (row.translation_languages or "").split(",") if x))
    return SessionSummary(
        session_id=row.session_id, subject=row.subject, created_at=row.created_at, updated_at=row.updated_at,
        source_language=row.source_language, target_language=row.target_language,
        segments=int(row.segment_count or 0), duration_seconds=float(row.last_end or 0.0), translations=langs,
    )


def _summaries_query() -> sa.Select[Any]:
    seg = (
        sa.select(
            segments.c.session_id,
            sa.func.count().label("segment_count"),
            sa.func.max(segments.c.end_seconds).label("last_end"),
        )
        .group_by(segments.c.session_id)
        .subquery()
    )
    langs = (
        sa.select(translations.c.session_id, translations.c.target_language)
        .distinct()
        .subquery()
    )
    # One comma-separated list of translation languages per session (string_agg / group_concat).
    lang_list = (
        sa.select(sa.func.aggregate_strings(langs.c.target_language, ","))
        .where(langs.c.session_id == sessions.c.session_id)
        .scalar_subquery()
    )
    return (
        sa.select(sessions, seg.c.segment_count, seg.c.last_end, lang_list.label("translation_languages"))
        .select_from(sessions.outerjoin(seg, seg.c.session_id == sessions.c.session_id))
    )


class TranscriptRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list_sessions(self, owner: Owner, *, limit: int = 50, cursor: str | None = None) -> Page:
        query = _summaries_query().where(_owned(owner))
        if cursor:
            created_at, session_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    sessions.c.created_at < created_at,
                    sa.and_(sessions.c.created_at == created_at, sessions.c.session_id < session_id),
                )
            )
        query = query.order_by(sessions.c.created_at.desc(), sessions.c.session_id.desc()).limit(limit + 1)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        found = [_summary(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(found[-1].created_at, found[-1].session_id) if more and found else None
        return Page(found, next_cursor)

    async def get_session(self, owner: Owner, session_id: str) -> SessionSummary | None:
        async with self.engine.connect() as connection:
            return await self._get(connection, owner, session_id)

    async def _get(self, connection: AsyncConnection, owner: Owner, session_id: str) -> SessionSummary | None:
        query = _summaries_query().where(sessions.c.session_id == session_id, _owned(owner))
        row = (await connection.execute(query)).first()
        return _summary(row) if row is not None else None

    async def get_transcript(
        self, owner: Owner, session_id: str, *, translation: str | None = None
    ) -> Transcript | None:
        """The session's finals in utterance order, each with its ``translation`` to that language."""
        async with self.engine.connect() as connection:
            summary = await self._get(connection, owner, session_id)
            if summary is None:
                return None
            tr = translations.alias("tr")
            query = sa.select(segments, tr.c.text.label("translated")).where(segments.c.session_id == session_id)
            query = query.select_from(
                segments.outerjoin(
                    tr,
                    sa.and_(
                        tr.c.session_id == segments.c.session_id,
                        tr.c.segment_id == segments.c.segment_id,
                        tr.c.target_language == (translation or ""),
                    ),
                )
            ).order_by(segments.c.utterance_index, segments.c.start_seconds, segments.c.id)
            rows = (await connection.execute(query)).all()
        found = [
            Segment(
                segment_id=r.segment_id, utterance_index=r.utterance_index, text=r.text, language=r.language,
                language_probability=r.language_probability, start=r.start_seconds, end=r.end_seconds,
                words=r.words, worker=r.worker, translation=r.translated,
            )
            for r in rows
        ]
        return Transcript(summary, found, translation)

    async def delete_session(self, owner: Owner, session_id: str, *, now: float) -> bool:
        """Delete the session and everything in it; False if it is not the caller's (or absent).
        A tombstone keeps results still on their way from bringing it back."""
        async with self.engine.begin() as connection:
            owned = (await connection.execute(
                sa.select(sessions.c.session_id).where(sessions.c.session_id == session_id, _owned(owner))
            )).first()
            if owned is None:
                return False
            await delete_sessions(connection, [session_id])
            await connection.execute(
                dialect_insert(connection, deleted_sessions).on_conflict_do_nothing(index_elements=["session_id"]),
                [{"session_id": session_id, "deleted_at": now}],
            )
        return True


async def delete_sessions(connection: AsyncConnection, session_ids: list[str]) -> int:
    """Delete sessions with their segments and translations (explicitly: SQLite enforces
    ON DELETE CASCADE only with its foreign_keys pragma, and a restored file may lack it)."""
    if not session_ids:
        return 0
    for table in (translations, segments):
        await connection.execute(sa.delete(table).where(table.c.session_id.in_(session_ids)))
    result = await connection.execute(sa.delete(sessions).where(sessions.c.session_id.in_(session_ids)))
    return int(result.rowcount or 0)
