"""The Redis bus contract: every key name and every message schema, in one place.

Streams carry jobs (``audio_jobs``, ``transcriptions``); a per-session pub/sub channel carries
results back to whichever gateway holds the session. Each message has a schema version ``v``
and the ids that make redelivery harmless (``segment_id`` names an utterance; a partial also
carries its ``partial_seq``). Decoding validates: a malformed entry raises
:class:`MalformedMessage` with a message that says what is wrong, never a bare KeyError.
"""

from __future__ import annotations

import hashlib
import json
import re
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


def result_stream_key(session_id: str) -> str:
    """Capped stream (TTL) of one session's results: the gateway holding the session reads it
    from the last id it saw, so a result written while its connection is down is not lost."""
    return f"result_stream:{session_id}"


RESULT_STREAM_MAXLEN: Final = 1000
RESULT_STREAM_TTL_SECONDS: Final = 3600  # like SESSION_TTL_SECONDS' default


def gateway_wake_key(gateway: str) -> str:
    """Stream a gateway's result reader also blocks on, so a new session joins its read at once."""
    return f"gateway_wake:{gateway}"


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
    audio_start: float | None = Field(
        default=None, ge=0,
        description="Where the job's audio begins (pre-roll or overlap included), same clock; word "
        "times are offset by it. None: at ``start``.",
    )
    source_language: str | None = None
    language_hint: str | None = Field(
        default=None, description="source_language auto: the session's confident language so far; a "
        "doubtful detection of this audio does not flip it.",
    )
    target_language: str | None = None
    prompt: str | None = Field(
        default=None, description="Committed text before this audio (the turn's earlier finals, or the "
        "previous final of the session); partials carry it too.",
    )
    word_timestamps: bool = Field(
        default=False, description="Return words with times (finals: the client asked; partials: the "
        "gateway's commit policy needs them).",
    )
    commit: Literal["pause", "agreement", "max_length", "turn_end"] | None = Field(
        default=None, description="Finals: why the gateway committed this span of its turn (issue 14).",
    )
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


class Word(BaseModel):
    model_config = ConfigDict(frozen=True)

    word: str
    start: float
    end: float
    probability: float


class PartialResult(_Message):
    type: Literal["realtime"] = "realtime"
    session_id: str
    segment_id: str
    utterance_index: int
    partial_seq: int
    text: str
    language: str | None = None
    language_probability: float | None = None
    translation: str | None = None
    words: list[Word] | None = Field(default=None, description="With times in session seconds, on request.")
    audio_start: float | None = Field(default=None, description="The job's audio span, session seconds.")
    audio_end: float | None = None
    worker: str = ""
    inference_seconds: float = 0.0
    skipped: bool = Field(default=False, description="Not run: the partial slot is free again.")


class FinalResult(_Message):
    type: Literal["final"] = "final"
    session_id: str
    segment_id: str
    utterance_index: int
    text: str
    language: str | None = None
    language_probability: float | None = None
    start: float
    end: float
    words: list[Word] | None = None
    worker: str = ""
    inference_seconds: float = 0.0
    speech_end_at: float | None = None
    queued_at: float | None = Field(default=None, description="When the gateway queued the job (epoch s).")
    translation_expected: bool = False
    speculative: bool = False
    commit: str | None = Field(default=None, description="The job's commit reason, echoed.")


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


def publish_result(pipe: Any, result: PartialResult | FinalResult | TranslationResult | ErrorResult) -> None:
    """Queue on ``pipe`` what a worker does with a result: append it to the session's result
    stream (at-least-once delivery to the gateway; the gateway drops duplicates) and publish it
    on the seed's ``results:{session}`` channel for any other listener."""
    data = encode_result(result)
    key = result_stream_key(result.session_id)
    pipe.xadd(key, {"r": data}, maxlen=RESULT_STREAM_MAXLEN, approximate=True)
    pipe.expire(key, RESULT_STREAM_TTL_SECONDS)
    pipe.publish(results_channel(result.session_id), data)


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


def session_digest(session_id: str) -> str:
    """A short stand-in for a session id where one must not appear (dead letters): stable, so
    entries of one session can be grouped, and of no use for resuming the session."""
    return "sid-" + hashlib.sha256(session_id.encode()).hexdigest()[:12]


_ID_FIELD = re.compile(rb'"(session_id|segment_id)"\s*:\s*"[^"]*"')


def without_session_ids(fields: dict[Any, Any]) -> dict[Any, Any]:
    """A stream entry's fields for ``dead_letters``: session ids in ``meta`` replaced by
    :func:`session_digest` (segment ids keep their index)."""
    out = dict(fields)
    for key in ("meta", b"meta"):
        raw = out.get(key)
        if raw is None:
            continue
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        try:
            meta = json.loads(data)
            if not isinstance(meta, dict):
                raise ValueError("not an object")
            if isinstance(meta.get("session_id"), str):
                meta["session_id"] = session_digest(meta["session_id"])
            if isinstance(meta.get("segment_id"), str):
                session, _, index = meta["segment_id"].rpartition(":")
                meta["segment_id"] = f"{session_digest(session)}:{index}"
            out[key] = json.dumps(meta).encode()
        except ValueError:
            out[key] = _ID_FIELD.sub(rb'"\1": "redacted"', data)  # malformed: cut the ids out
    return out


def dumps(obj: dict[str, Any]) -> str:
    """Compact JSON for client-facing messages."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
