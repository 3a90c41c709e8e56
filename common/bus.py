"""The Redis bus contract: every key name and every message schema, in one place.

Streams carry jobs (``audio_jobs``, ``transcriptions``); a capped per-session stream
(``result_stream:{session}``) carries results back to whichever gateway holds the session (it
replaces the seed's ``results:{session}`` pub/sub channel, which lost what was published while
a gateway was not subscribed); ``transcripts``
carries every delivered final, translation and session owner (written by the gateway) to the
transcript store. docs/bus.md has the table of who writes and reads each key.

Two layouts (:class:`BusLayout`), chosen once per process by ``common.redis_conn.connect_with``
from ``REDIS_CLUSTER`` and ``STREAM_SHARDS``. Single-node keeps the seed's names
(``audio_jobs``, ``session:<id>``). Cluster mode puts a hash tag in every per-session name
(``session:{<id>}``, ``session_log:{<id>}``, ``result_stream:{<id>}``, ``session_audio:{<id>}``) so a
session's keys share a slot, and shards each job stream into ``audio_jobs:{N}`` / ``transcriptions:{N}``; a session's
jobs go to shard ``crc32(session_id) % STREAM_SHARDS``, so one session's jobs stay in order
on one shard and its translation jobs on the same shard number. Each message has a schema version ``v``
and the ids that make redelivery harmless (``segment_id`` names an utterance; a partial also
carries its ``partial_seq``). Decoding validates: a malformed entry raises
:class:`MalformedMessage` with a message that says what is wrong, never a bare KeyError.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
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
# dead_letters keeps an entry's metadata for an operator, never its payload (a speaker's
# audio), and for a week at most: older entries are trimmed, and the key expires a week
# after the last one.
DEAD_LETTERS_TTL_SECONDS: Final = 7 * 24 * 3600
DEAD_LETTER_DROPPED_FIELDS: Final = frozenset({"audio"})
DEAD_LETTER_MAX_FIELD_BYTES: Final = 4096
# What the transcript store keeps: every delivered final, every translation, and each session's
# owner. Capped so a stack run without a store cannot fill Redis; the store deletes what it
# has committed, so the length is its backlog.
TRANSCRIPTS = "transcripts"
TRANSCRIPTS_MAXLEN = 100000
STORE_GROUP = "transcript_store"

# Service names used in heartbeats and consumer names.
GATEWAY_SERVICE = "gateway"
STT_SERVICE = "stt_worker"
TRANSLATION_SERVICE = "translation_worker"
STORE_SERVICE = "transcript_store"




@dataclass(frozen=True)
class BusLayout:
    """How names are spelled: the seed's single-node names, or hash-tagged and sharded."""

    cluster: bool = False
    shards: int = 1

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("STREAM_SHARDS must be at least 1")

    @property
    def stream_shards(self) -> int:
        """Shards of each job stream: one (the seed's name) unless in cluster mode."""
        return self.shards if self.cluster else 1


_layout = BusLayout()


def configure(*, cluster: bool, shards: int = 1) -> BusLayout:
    """Set this process's layout (called by ``connect_with``; tests reset it)."""
    global _layout
    _layout = BusLayout(cluster=cluster, shards=shards)
    return _layout


def layout() -> BusLayout:
    return _layout


def _tagged(session_id: str) -> str:
    """The session id as a hash tag in cluster mode: every key of a session on one slot."""
    return f"{{{session_id}}}" if _layout.cluster else session_id


def shard_of(session_id: str) -> int:
    """The job-stream shard of a session: stable across processes (crc32, not hash())."""
    return zlib.crc32(session_id.encode("utf-8", "surrogatepass")) % _layout.stream_shards


def _shard_name(base: str, shard: int) -> str:
    return f"{base}:{{{shard}}}" if _layout.cluster else base


def _shard_names(base: str, shards: Sequence[int] | None) -> list[str]:
    count = _layout.stream_shards
    chosen = range(count) if not shards or count == 1 else shards
    for shard in chosen:
        if not 0 <= shard < count:
            raise ValueError(f"stream shard {shard} does not exist (STREAM_SHARDS={count})")
    return [_shard_name(base, shard) for shard in chosen]


def audio_jobs_stream(session_id: str) -> str:
    """The ``audio_jobs`` stream (shard) a session's jobs go to."""
    return _shard_name(AUDIO_JOBS, shard_of(session_id))


def audio_jobs_streams(shards: Sequence[int] | None = None) -> list[str]:
    """Every ``audio_jobs`` shard, or the given subset (ignored in single-node mode)."""
    return _shard_names(AUDIO_JOBS, shards)


def transcriptions_stream(session_id: str) -> str:
    """The ``transcriptions`` stream (shard) a session's translation jobs go to."""
    return _shard_name(TRANSCRIPTIONS, shard_of(session_id))


def transcriptions_streams(shards: Sequence[int] | None = None) -> list[str]:
    """Every ``transcriptions`` shard, or the given subset (ignored in single-node mode)."""
    return _shard_names(TRANSCRIPTIONS, shards)




def result_stream_key(session_id: str) -> str:
    """Capped stream (TTL) of one session's results: the gateway holding the session reads it
    from the last id it saw, so a result written while its connection is down is not lost."""
    return f"result_stream:{_tagged(session_id)}"


def session_of_result_stream(key: str) -> str:
    """The session id a ``result_stream_key`` was made from."""
    tail = key.split(":", 1)[1] if ":" in key else key
    if _layout.cluster and tail.startswith("{") and tail.endswith("}"):
        return tail[1:-1]
    return tail


RESULT_STREAM_MAXLEN: Final = 1000
RESULT_STREAM_TTL_SECONDS: Final = 3600  # SESSION_TTL_SECONDS' default; services pass theirs


def gateway_wake_key(gateway: str) -> str:
    """Stream a gateway's result reader also blocks on, so a new session joins its read at once."""
    return f"gateway_wake:{gateway}"


def session_audio_key(session_id: str) -> str:
    """Stream of a session's recent audio, which partial jobs name by sample range instead of
    carrying it (``AudioJob.audio_samples``): each sample is put on the bus once, however many
    partials re-read it. Capped at ``session_audio_maxlen`` appends, TTL."""
    return f"session_audio:{_tagged(session_id)}"


def session_key(session_id: str) -> str:
    """Hash with a session's config, next seq and owner gateway (TTL)."""
    return f"session:{_tagged(session_id)}"


def session_log_key(session_id: str) -> str:
    """Capped stream of a session's delivered finals and translations, for replay (TTL)."""
    return f"session_log:{_tagged(session_id)}"


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


def upload_session_id(upload_id: str) -> str:
    """The session id under which the pieces of one uploaded file travel (never a live session)."""
    return f"upload-{upload_id}"


# Prefixes of the keys that exist per session or per subject: each must carry a TTL, so a
# finished session leaves nothing behind for ever (checked by common.keyaudit and the soak).
PER_SESSION_KEY_PREFIXES = ("session:", "session_log:", "result_stream:", "session_audio:", "gateway_wake:",
                            "limits:")


def segment_id(session_id: str, utterance_index: int) -> str:
    """The id of one utterance of a session: the same for its partials, final and translation."""
    return f"{session_id}:{utterance_index}"


class MalformedMessage(ValueError):
    """A bus entry that cannot be decoded; the message says why."""


class _Message(BaseModel):
    # cache_strings="keys": pydantic-core would otherwise cache every short string value it parses
    # (session and segment ids, one set per session) in its 16k-entry cache; keys repeat, ids do not.
    model_config = ConfigDict(frozen=True, extra="ignore", cache_strings="keys")

    v: Literal[1] = SCHEMA_VERSION
    # W3C trace context of the utterance this message belongs to (common/tracing.py); None
    # when tracing is off. Additive: a consumer without tracing ignores it.
    traceparent: str | None = Field(default=None, max_length=128)


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
    source_languages: list[str] | None = Field(
        default=None,
        description="The session's narrowing of SOURCE_LANGUAGES for detection; None: the worker's set.",
    )
    language_hint: str | None = Field(
        default=None, description="source_language auto: the session's confident language so far; a "
        "doubtful detection of this audio does not flip it.",
    )
    target_language: str | None = None
    prompt: str | None = Field(
        default=None, description="Committed text before this audio (the turn's earlier finals, or the "
        "previous final of the session); partials carry it too. None on a final whose audio repeats an "
        "overlap: those words are heard again, and prompted as well beam search skips them and stops early.",
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
    audio_samples: tuple[int, int] | None = Field(
        default=None,
        description="Partials: the job's audio is samples [first, last) (16 kHz, session clock) of the "
        "session's audio stream (``session_audio_key``) and the entry carries none. None: in the entry.",
    )
    speculative: bool = Field(
        default=False,
        description="An early final, sent during the silence before the utterance is known to "
        "have ended; the gateway uses it only if the speaker does not resume.",
    )
    priority: Literal["interactive", "batch"] = Field(
        default="interactive",
        description="batch: a piece of an uploaded file; runs after live finals and partials.",
    )
    task: Literal["transcribe", "translate"] = Field(
        default="transcribe", description="translate: Whisper's translation into English."
    )


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
    #: As on a final (set, all, hint); the gateway weighs the tail's detection as evidence.
    language_probability_scope: Literal["set", "all", "hint"] | None = None
    translation: str | None = None
    words: list[Word] | None = Field(default=None, description="With times in session seconds, on request.")
    audio_start: float | None = Field(default=None, description="The job's audio span, session seconds.")
    audio_end: float | None = None
    worker: str = ""
    inference_seconds: float = 0.0
    skipped: bool = Field(default=False, description="Not run: the partial slot is free again.")
    skip_reason: str | None = Field(
        default=None, description="Why it was not run (the worker's metric label): stale, backlog, or "
        "audio_missing (a partial by reference whose audio the session's stream no longer holds).",
    )


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
        "language the model knows; hint: given, not detected (the client named the language, or "
        "the model is English-only).",
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


class SessionInfo(_Message):
    """A session's owner and languages, for the transcript store (the gateway sends it when a
    session starts, resumes or changes its config)."""

    type: Literal["session"] = "session"
    session_id: str = Field(min_length=1, max_length=128)
    subject: str | None = Field(default=None, description="The token subject; None with auth off.")
    source_language: str | None = None
    target_language: str | None = None
    created_at: float
    gateway: str = ""


Result = Annotated[
    PartialResult | FinalResult | TranslationResult | ErrorResult, Field(discriminator="type")
]
# The union's JSON parser takes its config from here, not from the models.
_RESULT_ADAPTER: TypeAdapter[Result] = TypeAdapter(Result, config=ConfigDict(cache_strings="keys"))


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
    return job, _pcm_field(fields, "audio", "audio job payload")


def _pcm_field(fields: dict[Any, Any], name: str, what: str) -> np.ndarray:
    """A field of 16-bit little-endian PCM bytes as an int16 array (a copy)."""
    audio = _field(fields, name)
    if not isinstance(audio, bytes | bytearray) or len(audio) % 2:
        raise MalformedMessage(f"{what} is not 16-bit PCM bytes")
    return np.frombuffer(audio, dtype="<i2").astype(np.int16)


#: A partial's ``skip_reason`` when the session's audio stream no longer holds its samples.
SKIP_AUDIO_MISSING: Final = "audio_missing"


def session_audio_maxlen(max_uncommitted_seconds: float, partial_interval: float) -> int:
    """Appends a session's audio stream keeps: enough for the longest audio a partial can
    name (the uncommitted tail, ``MAX_UNCOMMITTED_SECONDS``; without streaming commits the
    utterance so far, ``MAX_SEGMENT_SECONDS``), plus the overlap and a margin, at the
    fastest append rate, one per partial interval. A slower rate (a busy worker) makes each
    append longer, so the appends kept cover more time, never less."""
    return math.ceil((max_uncommitted_seconds + 2.0) / partial_interval) + 4


def add_session_audio(pipe: Any, session_id: str, first: int, pcm: np.ndarray, ttl: int, maxlen: int) -> None:
    """Queue on ``pipe`` the append of ``pcm`` (int16, from session sample ``first``) to the
    session's audio stream, capped exactly at ``maxlen`` appends (an approximate cap trims only
    whole stream nodes of 100 entries: far more audio than a tail needs), TTL."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("audio must be a 1-D int16 array")
    key = session_audio_key(session_id)
    pipe.xadd(key, {"s": str(first), "a": pcm.astype("<i2").tobytes()}, maxlen=maxlen, approximate=False)
    pipe.expire(key, ttl)


def decode_session_audio(fields: dict[Any, Any]) -> tuple[int, np.ndarray]:
    """An entry of a session's audio stream: its first sample and its int16 PCM."""
    try:
        first = int(_field(fields, "s"))
    except (TypeError, ValueError):
        raise MalformedMessage("session audio entry has no valid start sample") from None
    if first < 0:
        raise MalformedMessage("session audio entry starts before the session")
    return first, _pcm_field(fields, "a", "session audio entry")


def encode_transcription_job(job: TranscriptionJob) -> dict[Any, Any]:
    return {"meta": job.model_dump_json().encode()}


def decode_transcription_job(fields: dict[Any, Any]) -> TranscriptionJob:
    try:
        return TranscriptionJob.model_validate_json(_field(fields, "meta"))
    except ValidationError as exc:
        raise MalformedMessage(f"transcription job invalid: {_summary(exc)}") from None


def encode_result(result: PartialResult | FinalResult | TranslationResult | ErrorResult) -> str:
    return result.model_dump_json(exclude_none=False)


def publish_result(pipe: Any, result: PartialResult | FinalResult | TranslationResult | ErrorResult,
                   ttl: int = RESULT_STREAM_TTL_SECONDS) -> None:
    """Queue on ``pipe`` what a worker does with a result: append it to the session's result
    stream (at-least-once delivery to the gateway; the gateway drops duplicates). The seed's
    ``results:{session}`` pub/sub channel is gone: nothing read it once the gateway read the
    streams, and on a cluster every classic PUBLISH is relayed to every node."""
    data = encode_result(result)
    key = result_stream_key(result.session_id)
    pipe.xadd(key, {"r": data}, maxlen=RESULT_STREAM_MAXLEN, approximate=True)
    pipe.expire(key, ttl)  # SESSION_TTL_SECONDS: the stream lives as long as the session


def decode_result(data: str | bytes) -> PartialResult | FinalResult | TranslationResult | ErrorResult:
    try:
        return _RESULT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise MalformedMessage(f"result invalid: {_summary(exc)}") from None


TranscriptRecord = FinalResult | TranslationResult | SessionInfo
_TRANSCRIPT_ADAPTER: TypeAdapter[TranscriptRecord] = TypeAdapter(
    Annotated[FinalResult | TranslationResult | SessionInfo, Field(discriminator="type")]
)


def encode_transcript(record: TranscriptRecord) -> dict[Any, Any]:
    """Stream fields of a ``transcripts`` entry (no audio: only text, times and ids)."""
    return {"meta": record.model_dump_json().encode()}


def decode_transcript(fields: dict[Any, Any]) -> TranscriptRecord:
    try:
        return _TRANSCRIPT_ADAPTER.validate_json(_field(fields, "meta"))
    except ValidationError as exc:
        raise MalformedMessage(f"transcript entry invalid: {_summary(exc)}") from None


def add_transcript(pipe: Any, record: TranscriptRecord) -> Any:
    """Queue one record for the transcript store on a Redis client or pipeline (one XADD)."""
    return pipe.xadd(TRANSCRIPTS, encode_transcript(record), maxlen=TRANSCRIPTS_MAXLEN, approximate=True)


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
