"""Protocol v1 as a client sees it: typed models of every message, both directions.

Server messages (``ready``, ``vad``, ``realtime``, ``final``, ``translation``, ``error``,
``done``, ``pong``) parse with :func:`parse_server_message` into frozen pydantic models with
the gateway's field names and types; a type this client does not know becomes
:class:`Unknown` and fields it does not know are ignored, so a newer gateway does not break
an older client. Client messages (``config``, ``flush``, ``end``, ``ping``, ``auth``) are
models too, rendered with ``to_json()``. Servers written against this module (the tests'
fakes) render server messages with ``to_json()`` as well, exactly as the gateway does.

Pure: no sockets. ``tests/unit/speech_client/test_agreement.py`` holds this file to
``gateway/protocol.py`` and to the error codes the services actually send.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1


class ErrorCode(str, enum.Enum):
    """Every ``code`` an ``error`` message (or a refused handshake) can carry.

    ``Error.code`` stays a plain string, so a code added by a newer gateway still parses;
    :attr:`Error.known_code` is the member when the code is one of these.
    """

    # Bad client input (the session goes on).
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    INVALID_LANGUAGE = "invalid_language"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    ODD_BYTE_COUNT = "odd_byte_count"
    FRAME_TOO_LARGE = "frame_too_large"
    ENDED = "ended"  # audio after ``end``
    # The session and the pipeline.
    UNKNOWN_SESSION = "unknown_session"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TOO_LONG = "session_too_long"
    TRANSLATION_UNAVAILABLE = "translation_unavailable"
    TRANSLATION_FAILED = "translation_failed"
    UNSUPPORTED_LANGUAGE_PAIR = "unsupported_language_pair"
    # Authentication and abuse limits (most close the socket with 1008, or refuse the handshake).
    AUTH_NOT_ENABLED = "auth_not_enabled"
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_AUDIENCE = "token_audience"
    TOKEN_ISSUER = "token_issuer"
    TOKEN_SUBJECT_CHANGED = "token_subject_changed"
    RATE_LIMITED_IP = "rate_limited_ip"
    LOCKED_OUT = "locked_out"
    TOO_MANY_UNAUTHENTICATED = "too_many_unauthenticated"
    TOO_MANY_SESSIONS_FOR_SUBJECT = "too_many_sessions_for_subject"
    AUDIO_QUOTA_EXCEEDED = "audio_quota_exceeded"

    def __str__(self) -> str:
        return self.value


class ProtocolError(ValueError):
    """A frame from the gateway that is not a protocol v1 JSON message."""


# --------------------------------------------------------------------------- client -> gateway


class _Message(BaseModel):
    # A field this package does not know is a typo in the caller, not something to send.
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    # Fields left out of the JSON when None (others, such as ``translation``, are sent as null).
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq"})

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name in self._omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


class Config(_Message):
    """Session settings. Only the fields given are sent: a field left out means "leave it as
    it is", while ``target_language=None`` given explicitly means "translation off"."""

    type: Literal["config"] = "config"
    source_language: str | None = None
    #: Narrows the deployment's SOURCE_LANGUAGES for detection; [] goes back to all of them.
    source_languages: list[str] | None = None
    target_language: str | None = None
    sample_rate: int | None = None
    partials: bool | None = None
    word_timestamps: bool | None = None
    session_id: str | None = None
    last_seq: int | None = None
    resume_secret: str | None = Field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include={"type", *self.model_fields_set})


class Flush(_Message):
    type: Literal["flush"] = "flush"


class End(_Message):
    type: Literal["end"] = "end"


class Ping(_Message):
    type: Literal["ping"] = "ping"
    id: str | int | None = None  # echoed in the pong
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"id"})


class Auth(_Message):
    """The first message when the token is neither in a header nor in the URL."""

    type: Literal["auth"] = "auth"
    token: str = Field(repr=False)


ClientMessage = Config | Flush | End | Ping | Auth


# --------------------------------------------------------------------------- gateway -> client


class _ServerMessage(_Message):
    # Unknown fields are ignored: a newer gateway may add some.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Ready(_ServerMessage):
    type: Literal["ready"] = "ready"
    session_id: str
    protocol: int = PROTOCOL_VERSION
    sample_rate: int
    source_language: str  # "auto" or a code
    target_language: str | None
    partials: bool = True
    silence_threshold_seconds: float | None = None
    last_seq: int = 0
    # With auth off: what a later ``config`` must carry to resume this session (never logged).
    resume_secret: str | None = Field(default=None, repr=False)
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "resume_secret"})


class Vad(_ServerMessage):
    type: Literal["vad"] = "vad"
    event: Literal["speech_start", "speech_end"]
    t: float
    seq: int | None = None


class Realtime(_ServerMessage):
    """The partial text of the utterance in progress (``type: realtime``)."""

    type: Literal["realtime"] = "realtime"
    segment_id: str
    text: str
    translation: str | None = None
    language: str | None = None
    seq: int | None = None


class Word(BaseModel):
    model_config = ConfigDict(frozen=True)

    word: str
    start: float
    end: float
    probability: float


class Final(_ServerMessage):
    type: Literal["final"] = "final"
    segment_id: str
    text: str
    language: str | None = None
    language_probability: float | None = None
    # "set": renormalised over the session's languages; "all": unrestricted; "hint": named.
    language_probability_scope: str | None = None
    start: float
    end: float
    words: list[Word] | None = None
    translation: str | None = None
    worker: str = ""
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "words"})


class Translation(_ServerMessage):
    type: Literal["translation"] = "translation"
    segment_id: str
    text: str
    source_language: str | None = None
    target_language: str
    worker: str = ""
    seq: int | None = None


class TurnEnd(_ServerMessage):
    """The turn whose last final is ``segment_id`` is over (after ``SILENCE_THRESHOLD_SECONDS``
    of silence); it follows that final and its translation."""

    type: Literal["turn_end"] = "turn_end"
    segment_id: str
    start: float
    end: float
    seq: int | None = None


class Error(_ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    segment_id: str | None = None  # the utterance it concerns, when it concerns one
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "segment_id"})

    @property
    def known_code(self) -> ErrorCode | None:
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None


class Done(_ServerMessage):
    type: Literal["done"] = "done"
    seq: int | None = None


class Pong(_ServerMessage):
    type: Literal["pong"] = "pong"
    id: str | int | None = None
    t: float | None = None  # the gateway's clock
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "id", "t"})


class Unknown(_ServerMessage):
    """A message type this client does not know; ``data`` is the whole message."""

    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


KnownServerMessage = Annotated[
    Ready | Vad | Realtime | Final | Translation | TurnEnd | Error | Done | Pong, Field(discriminator="type")
]
ServerMessage = Ready | Vad | Realtime | Final | Translation | TurnEnd | Error | Done | Pong | Unknown
SERVER_TYPES: frozenset[str] = frozenset(
    {"ready", "vad", "realtime", "final", "translation", "turn_end", "error", "done", "pong"}
)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(KnownServerMessage)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one text frame; raise :class:`ProtocolError` if it is not a valid v1 message."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise ProtocolError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("not a JSON object with a string 'type'")
    kind = data["type"]
    if kind not in SERVER_TYPES:
        seq = data.get("seq")
        return Unknown(type=kind, data=data, seq=seq if type(seq) is int else None)
    try:
        message: ServerMessage = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or "message" for e in exc.errors()[:5])
        raise ProtocolError(f"bad {kind!r} message ({fields})") from None
    return message
