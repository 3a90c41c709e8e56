"""The Redis bus contract: every key name and every message schema, in one place.

Streams carry jobs (``audio_jobs``, ``transcriptions``); a per-session pub/sub channel carries
results back to whichever gateway holds the session. Each message has a schema version ``v``
and the ids that make redelivery harmless (``segment_id`` names an utterance; a partial also
carries its ``partial_seq``). Decoding validates: a malformed entry raises
:class:`MalformedMessage` with a message that says what is wrong, never a bare KeyError.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION: Final = 1

# Streams and groups.
AUDIO_JOBS = "audio_jobs"
STT_GROUP = "stt_workers"
TRANSCRIPTIONS = "transcriptions"
TRANSLATION_GROUP = "translation_workers"
DEAD_LETTERS = "dead_letters"
DEAD_LETTERS_MAXLEN = 10000

# Service names used in heartbeats and consumer names.
GATEWAY_SERVICE = "gateway"
STT_SERVICE = "stt_worker"
TRANSLATION_SERVICE = "translation_worker"


def results_channel(session_id: str) -> str:
    """Pub/sub channel on which workers publish one session's results."""
    return f"results:{session_id}"


def session_key(session_id: str) -> str:
    """Hash with a session's config, next seq and owner gateway (TTL)."""
    return f"session:{session_id}"


def session_log_key(session_id: str) -> str:
    """Capped stream of a session's delivered finals and translations, for replay (TTL)."""
    return f"session_log:{session_id}"


def heartbeat_key(service: str, name: str) -> str:
    """Key with a TTL that says a service instance is alive."""
    return f"heartbeat:{service}:{name}"


def heartbeat_pattern(service: str = "*") -> str:
    return f"heartbeat:{service}:*"


def limit_sessions_key(subject: str) -> str:
    """Sorted set of a subject's open sessions (scored by expiry), for SESSIONS_PER_SUBJECT."""
    return f"limits:sessions:{subject}"


def limit_audio_key(subject: str, minute: int) -> str:
    """Seconds of audio a subject sent in one clock minute, for the audio quota."""
    return f"limits:audio:{subject}:{minute}"


def segment_id(session_id: str, utterance_index: int) -> str:
    """The id of one utterance of a session: the same for its partials, final and translation."""
    return f"{session_id}:{utterance_index}"


class MalformedMessage(ValueError):
    """A bus entry that cannot be decoded; the message says why."""


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[1] = SCHEMA_VERSION


class AudioJob(_Message):
    """One utterance (final) or the audio so far of an open utterance (partial)."""

    kind: Literal["final", "partial"]
    session_id: str = Field(min_length=1, max_length=128)
    utterance_index: int = Field(ge=0)
    partial_seq: int = Field(default=0, ge=0)
    segment_id: str = Field(min_length=1)
    sample_rate: Literal[16000] = 16000
    start: float = Field(ge=0, description="Utterance start, seconds since session start.")
    end: float = Field(ge=0, description="Utterance end (or audio so far), same clock.")
    source_language: str | None = None
    source_languages: list[str] | None = Field(
        default=None,
        description="The session's narrowing of SOURCE_LANGUAGES for detection; None: the worker's set.",
    )
    language_hint: str | None = Field(
        default=None, description="source_language auto: the session's confident language so far; a "
        "doubtful detection of this audio does not flip it.",
    )
    target_language: str | None = None
    prompt: str | None = Field(default=None, description="Previous final of the session.")
    word_timestamps: bool = False
    created_at: float = Field(description="Wall clock (epoch s) when the gateway queued it.")
    speech_end_at: float | None = Field(
        default=None, description="Wall clock when the segmenter saw speech end (finals)."
    )
    speculative: bool = Field(
        default=False,
        description="An early final, sent during the silence before the utterance is known to "
        "have ended; the gateway uses it only if the speaker does not resume.",
    )
    gateway: str = ""


class TranscriptionJob(_Message):
    """A final that needs translating."""

    session_id: str = Field(min_length=1, max_length=128)
    segment_id: str = Field(min_length=1)
    utterance_index: int = Field(ge=0)
    text: str
    source_language: str | None
    target_language: str = Field(min_length=2)
    created_at: float
    speech_end_at: float | None = None


class PartialResult(_Message):
    type: Literal["realtime"] = "realtime"
    session_id: str
    segment_id: str
    utterance_index: int
    partial_seq: int
    text: str
    language: str | None = None
    translation: str | None = None
    worker: str = ""
    inference_seconds: float = 0.0
    skipped: bool = Field(default=False, description="Not run: the partial slot is free again.")


class Word(BaseModel):
    model_config = ConfigDict(frozen=True)

    word: str
    start: float
    end: float
    probability: float


class FinalResult(_Message):
    type: Literal["final"] = "final"
    session_id: str
    segment_id: str
    utterance_index: int
    text: str
    language: str | None = None
    language_probability: float | None = None
    language_probability_scope: Literal["set", "all", "hint"] | None = Field(
        default=None,
        description="set: renormalised over the session's source languages; all: over every "
        "language the model knows; hint: the client named the language.",
    )
    #: The language unrestricted detection would have answered, when it is outside the set.
    language_outside_set: str | None = None
    start: float
    end: float
    words: list[Word] | None = None
    worker: str = ""
    inference_seconds: float = 0.0
    speech_end_at: float | None = None
    queued_at: float | None = Field(default=None, description="When the gateway queued the job (epoch s).")
    translation_expected: bool = False
    speculative: bool = False


class TranslationResult(_Message):
    type: Literal["translation"] = "translation"
    session_id: str
    segment_id: str
    utterance_index: int
    text: str
    source_language: str | None
    target_language: str
    worker: str = ""


class ErrorResult(_Message):
    """An error a worker reports for a session (e.g. translation_unavailable)."""

    type: Literal["error"] = "error"
    session_id: str
    segment_id: str | None = None
    utterance_index: int | None = None
    code: str
    message: str


Result = Annotated[
    PartialResult | FinalResult | TranslationResult | ErrorResult, Field(discriminator="type")
]
_RESULT_ADAPTER: TypeAdapter[Result] = TypeAdapter(Result)


def _field(fields: dict[Any, Any], name: str) -> Any:
    for key in (name, name.encode()):
        if key in fields:
            return fields[key]
    raise MalformedMessage(f"entry has no {name!r} field (fields: {sorted(map(_text, fields))})")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def encode_audio_job(job: AudioJob, pcm: np.ndarray) -> dict[Any, Any]:
    """Stream fields for an audio job: JSON metadata plus raw int16 little-endian PCM."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("audio must be a 1-D int16 array")
    return {"meta": job.model_dump_json().encode(), "audio": pcm.astype("<i2").tobytes()}


def decode_audio_job(fields: dict[Any, Any]) -> tuple[AudioJob, np.ndarray]:
    """Validate an ``audio_jobs`` entry; returns the job and its int16 PCM."""
    try:
        job = AudioJob.model_validate_json(_field(fields, "meta"))
    except ValidationError as exc:
        raise MalformedMessage(f"audio job metadata invalid: {_summary(exc)}") from None
    audio = _field(fields, "audio")
    if not isinstance(audio, bytes | bytearray) or len(audio) % 2:
        raise MalformedMessage("audio job payload is not 16-bit PCM bytes")
    return job, np.frombuffer(audio, dtype="<i2").astype(np.int16)


def encode_transcription_job(job: TranscriptionJob) -> dict[Any, Any]:
    return {"meta": job.model_dump_json().encode()}


def decode_transcription_job(fields: dict[Any, Any]) -> TranscriptionJob:
    try:
        return TranscriptionJob.model_validate_json(_field(fields, "meta"))
    except ValidationError as exc:
        raise MalformedMessage(f"transcription job invalid: {_summary(exc)}") from None


def encode_result(result: PartialResult | FinalResult | TranslationResult | ErrorResult) -> str:
    return result.model_dump_json(exclude_none=False)


def decode_result(data: str | bytes) -> PartialResult | FinalResult | TranslationResult | ErrorResult:
    try:
        return _RESULT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise MalformedMessage(f"result invalid: {_summary(exc)}") from None


def _summary(exc: ValidationError) -> str:
    """One line naming each bad field, without echoing the (possibly large) input."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def dumps(obj: dict[str, Any]) -> str:
    """Compact JSON for client-facing messages."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
