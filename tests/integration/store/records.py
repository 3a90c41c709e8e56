"""Bus records for the store tests (what the STT worker, translation worker and gateway send)."""

from __future__ import annotations

from common import bus


def final(session: str, index: int, text: str | None = None, *, start: float | None = None,
          words: bool = False) -> bus.FinalResult:
    begin = index * 2.0 if start is None else start
    return bus.FinalResult(
        session_id=session, segment_id=bus.segment_id(session, index), utterance_index=index,
        text=f"utterance {index} of {session}" if text is None else text, language="en",
        language_probability=0.98, start=begin, end=begin + 1.5, worker="stt-test-0",
        words=[bus.Word(word="utterance", start=begin, end=begin + 0.5, probability=0.9)] if words else None,
    )


def translation(session: str, index: int, lang: str = "de") -> bus.TranslationResult:
    return bus.TranslationResult(
        session_id=session, segment_id=bus.segment_id(session, index), utterance_index=index,
        text=f"[{lang}] utterance {index}", source_language="en", target_language=lang, worker="tr-test-0",
    )


def session(session_id: str, subject: str | None, *, created_at: float = 1000.0) -> bus.SessionInfo:
    return bus.SessionInfo(
        session_id=session_id, subject=subject, source_language=None, target_language="de",
        created_at=created_at, gateway="gw-test",
    )
