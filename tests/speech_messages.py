"""Short builders of server messages for tests and fake gateways, on :mod:`speech_client`.

Fakes send what these build (``.to_json()``), so a fake gateway speaks the protocol as the
client package defines it, and that definition is held to the real gateway's by
``tests/unit/speech_client/test_agreement.py``.
"""

from __future__ import annotations

from typing import Any

from speech_client.protocol import Done, Error, Final, Ready, Realtime, Translation


def ready(session_id: str = "sess-1", *, sample_rate: int = 16000, source_language: str = "auto",
          target_language: str | None = None, **fields: Any) -> Ready:
    return Ready(session_id=session_id, sample_rate=sample_rate, source_language=source_language,
                 target_language=target_language, **fields)


def realtime(segment: int | str, text: str, **fields: Any) -> Realtime:
    return Realtime(segment_id=str(segment), text=text, **fields)


def final(segment: int | str, text: str, *, start: float = 0.0, end: float = 1.0, **fields: Any) -> Final:
    return Final(segment_id=str(segment), text=text, start=start, end=end, **fields)


def translation(segment: int | str, text: str, *, target_language: str = "es", **fields: Any) -> Translation:
    return Translation(segment_id=str(segment), text=text, target_language=target_language, **fields)


def error(code: str, message: str = "test", **fields: Any) -> Error:
    return Error(code=code, message=message, **fields)


def done(**fields: Any) -> Done:
    return Done(**fields)
