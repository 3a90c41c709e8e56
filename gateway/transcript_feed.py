"""What the gateway tells the transcript store: each session's owner and every result it sent.

The gateway is the one place that knows what a client was actually sent: with streaming
commits most finals are agreed partial hypotheses committed here, not a worker's final job. So
every final and translation written to the session log also goes to the ``transcripts`` stream
(the store's writes are idempotent on ``(session_id, segment_id)``), and each config write sends
the session's owner and languages. Pure: records in, no I/O.
"""

from __future__ import annotations

import time
from typing import Any

from common import bus
from gateway.sessions import SessionConfig


def _index(segment_id: str) -> int:
    tail = segment_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def session_record(session_id: str, config: SessionConfig, subject: str | None, gateway: str) -> bus.SessionInfo:
    return bus.SessionInfo(session_id=session_id, subject=subject or None, source_language=config.source_language,
                           target_language=config.target_language, created_at=time.time(), gateway=gateway)


def result_record(session_id: str, message: dict[str, Any]) -> bus.TranscriptRecord | None:
    """The store's record of a final or translation as sent to the client (None otherwise)."""
    kind = message.get("type")
    segment = str(message.get("segment_id", ""))
    if kind == "final" and segment:
        return bus.FinalResult(
            session_id=session_id, segment_id=segment, utterance_index=_index(segment),
            text=str(message.get("text", "")), language=message.get("language"),
            language_probability=message.get("language_probability"),
            start=float(message.get("start") or 0.0), end=float(message.get("end") or 0.0),
            words=message.get("words"), worker=str(message.get("worker") or ""),
        )
    if kind == "translation" and segment and message.get("target_language"):
        return bus.TranslationResult(
            session_id=session_id, segment_id=segment, utterance_index=_index(segment),
            text=str(message.get("text", "")), source_language=message.get("source_language"),
            target_language=str(message["target_language"]), worker=str(message.get("worker") or ""),
        )
    return None
