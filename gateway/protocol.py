"""Client protocol version 1 (DESIGN.md section 3): parsing what clients send, building what they get.

Pure: no sockets, no Redis. ``parse_text`` turns a text frame into one of the client message
models and ``parse_binary`` turns a binary frame into int16 PCM; both raise only
:class:`ProtocolError`, whose ``code`` is stable snake_case for the ``error`` message and whose
``message`` is for a person (it never echoes the offending input at length).
The server message models (``Ready``, ``Vad``, ``Realtime``, ``Final``, ``Translation``,
``Error``, ``Done``, ``Pong``) carry exactly the fields of DESIGN.md section 3 and render with
``to_json()``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common import bus
from common.languages import WHISPER_LANGUAGES, parse_language_list
from gateway.resample import UnsupportedSampleRate, check_sample_rate

PROTOCOL_VERSION = 1


class ErrorCode:
    """Every ``error`` code the services send, in one place (they are part of the protocol).

    ``tests/unit/speech_client/test_agreement.py`` checks this list against the codes the
    sources actually send and against the client's ``speech_client.ErrorCode``.
    """

    # Bad client input, from the parser (the session goes on).
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    INVALID_LANGUAGE = "invalid_language"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    ODD_BYTE_COUNT = "odd_byte_count"
    FRAME_TOO_LARGE = "frame_too_large"
    # From the connection handler.
    ENDED = "ended"
    UNKNOWN_SESSION = "unknown_session"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TOO_LONG = "session_too_long"
    # From the translation worker, through the gateway.
    TRANSLATION_UNAVAILABLE = "translation_unavailable"
    TRANSLATION_FAILED = "translation_failed"
    UNSUPPORTED_LANGUAGE_PAIR = "unsupported_language_pair"
    # Authentication (common.auth) and abuse limits (gateway.limits).
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


class ProtocolError(ValueError):
    """Bad client input. ``code`` is stable snake_case; ``message`` is for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_LANG_RE = re.compile(r"^[a-z]{2,3}$")
_SESSION_ID_RE = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_TOKEN_CHARS = 8192
# Control messages are small (the largest is an auth message with its token): a longer text
# frame is refused before it is parsed, so parsing costs little whatever a client sends.
MAX_TEXT_FRAME_CHARS = 16384
# No control message needs more brackets than this (the longest field that may hold any,
# a ping id, has 128 characters): more means nesting built to make the decoder recurse.
MAX_BRACKETS = 256


def _language(value: str) -> str:
    """Normalise a language code: ``EN`` -> ``en``, ``en-US`` / ``pt_BR`` -> primary subtag."""
    code = value.strip().lower().replace("_", "-").split("-", 1)[0]
    if not _LANG_RE.match(code):
        raise ProtocolError(
            ErrorCode.INVALID_LANGUAGE, "a language is an ISO 639-1 code such as 'en' or 'de'"
        )
    return code


class _ClientMessage(BaseModel):
    # strict: "partials": "yes" or "sample_rate": "16000" is a wrong type, not a guess.
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class ConfigMessage(_ClientMessage):
    """Session settings; every field is optional and None means "leave as it is"."""

    type: Literal["config"] = "config"
    source_language: str | None = Field(default=None, max_length=16)
    #: Narrows the deployment's SOURCE_LANGUAGES for this session: detection answers only
    #: these (intersected with the deployment's set); [] or null: the deployment's set.
    source_languages: list[Annotated[str, Field(max_length=16)]] | None = Field(default=None, max_length=100)
    target_language: str | None = Field(default=None, max_length=16)
    sample_rate: int | None = None
    partials: bool | None = None
    word_timestamps: bool | None = None
    session_id: str | None = Field(default=None, pattern=_SESSION_ID_RE)
    last_seq: int | None = Field(default=None, ge=0, le=2**62)
    # With auth off, the resume secret from the session's ``ready`` (never logged).
    resume_secret: str | None = Field(default=None, max_length=128, repr=False)

    @model_validator(mode="after")
    def _resume_needs_session(self) -> ConfigMessage:
        if self.last_seq is not None and self.session_id is None:
            raise ValueError("last_seq needs session_id")
        return self

    @property
    def sets_target_language(self) -> bool:
        """True if the message names a target language, including null (translation off)."""
        return "target_language" in self.model_fields_set


class FlushMessage(_ClientMessage):
    type: Literal["flush"] = "flush"


class EndMessage(_ClientMessage):
    type: Literal["end"] = "end"


class PingMessage(_ClientMessage):
    type: Literal["ping"] = "ping"
    id: Annotated[str, Field(max_length=128)] | int | None = None  # echoed in the pong


class AuthMessage(_ClientMessage):
    type: Literal["auth"] = "auth"
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)

    def __repr__(self) -> str:  # a token must never reach a log line
        return "AuthMessage(token=***)"

    __str__ = __repr__


ClientMessage = ConfigMessage | FlushMessage | EndMessage | PingMessage | AuthMessage

_BY_TYPE: dict[str, type[_ClientMessage]] = {
    "config": ConfigMessage,
    "flush": FlushMessage,
    "end": EndMessage,
    "ping": PingMessage,
    "auth": AuthMessage,
}


MAX_ERRORS_SHOWN = 5  # an error message names at most this many bad fields
_MAX_NAME_CHARS = 40


def _summary(exc: ValidationError) -> str:
    """One line naming the first bad fields, without echoing the input (it may hold a token).

    Only the first few errors are formatted: the message is cut before it is built, so its
    cost does not grow with the number of errors.
    """
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(p) for p in err["loc"])[:_MAX_NAME_CHARS] or "message"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)[:500]


def _unknown_fields(obj: dict[str, Any], model: type[_ClientMessage]) -> str | None:
    """The unknown keys of a message, summed up in one short line; None if there are none.

    Checked before validation: a frame of thousands of unknown keys would otherwise cost one
    pydantic error object each (tens of milliseconds of event loop for a 256 KiB frame).
    """
    unknown = [key for key in obj if key not in model.model_fields]
    if not unknown:
        return None
    shown = ", ".join(repr(key[:_MAX_NAME_CHARS]) for key in unknown[:MAX_ERRORS_SHOWN])
    more = f" and {len(unknown) - MAX_ERRORS_SHOWN} more" if len(unknown) > MAX_ERRORS_SHOWN else ""
    return f"unknown field(s) {shown}{more}"


def parse_text(data: str) -> ClientMessage:
    """Parse a client text frame; raise ProtocolError (and nothing else) on bad input."""
    if len(data) > MAX_TEXT_FRAME_CHARS:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"a text frame holds one control message of at most {MAX_TEXT_FRAME_CHARS} characters",
        )
    if data.count("[") + data.count("{") > MAX_BRACKETS:
        raise ProtocolError(ErrorCode.BAD_JSON, "a text frame must be one small, flat JSON object")
    try:
        obj: Any = json.loads(data)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested arrays; ValueError covers JSONDecodeError and bad unicode.
        raise ProtocolError(ErrorCode.BAD_JSON, "a text frame must be one JSON object") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a text frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "the message has no string 'type'")
    model = _BY_TYPE.get(kind)
    if model is None:
        known = ", ".join(_BY_TYPE)
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type (known: {known})")
    unknown = _unknown_fields(obj, model)
    if unknown is not None:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"invalid {kind}: {unknown}")
    try:
        message = model.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"invalid {kind}: {_summary(exc)}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"invalid {kind}: too deeply nested") from None
    if isinstance(message, ConfigMessage):
        message = _check_config(message)
    return message  # type: ignore[return-value]


def _check_config(message: ConfigMessage) -> ConfigMessage:
    """Checks with their own error codes; returns the message with languages normalised."""
    if message.sample_rate is not None:
        try:
            check_sample_rate(message.sample_rate)
        except UnsupportedSampleRate as exc:
            raise ProtocolError(ErrorCode.UNSUPPORTED_SAMPLE_RATE, str(exc)) from None
    update: dict[str, Any] = {}
    if message.source_languages is not None:
        try:
            update["source_languages"] = list(parse_language_list(message.source_languages)) or None
        except ValueError as exc:
            raise ProtocolError(ErrorCode.UNSUPPORTED_LANGUAGE, f"source_languages: {exc}") from None
    if message.source_language is not None:
        if message.source_language.strip().lower() == "auto":
            update["source_language"] = "auto"
        else:
            code = _language(message.source_language)
            if code not in WHISPER_LANGUAGES:
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED_LANGUAGE,
                    f"source language {code!r} is not one speech recognition knows; use 'auto'",
                )
            update["source_language"] = code
    if message.target_language is not None:
        update["target_language"] = _language(message.target_language)
    return message.model_copy(update=update) if update else message


def parse_binary(data: bytes | bytearray | memoryview, max_bytes: int | None = None) -> np.ndarray:
    """A binary frame as int16 PCM (little-endian on the wire); raise ProtocolError if malformed."""
    n = len(data)
    if max_bytes is not None and n > max_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE, f"audio frame of {n} bytes exceeds {max_bytes}"
        )
    if n % 2:
        raise ProtocolError(
            ErrorCode.ODD_BYTE_COUNT, "audio is 16-bit PCM: a frame must have an even byte count"
        )
    return np.frombuffer(bytes(data), dtype="<i2").astype(np.int16)


# --------------------------------------------------------------------------- server messages


class ServerMessage(BaseModel):
    """A gateway-to-client message. ``seq`` is the session's increasing result counter."""

    model_config = ConfigDict(frozen=True)

    type: str
    # Fields dropped from the JSON when None (the others are sent as null, e.g. translation).
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq"})

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name in self._omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data

    def to_json(self) -> str:
        return bus.dumps(self.to_dict())


class Ready(ServerMessage):
    type: Literal["ready"] = "ready"
    session_id: str
    protocol: int = PROTOCOL_VERSION
    sample_rate: int
    source_language: str  # "auto" or a code
    target_language: str | None
    # Beyond DESIGN.md section 3, for clients that pace or resume themselves:
    partials: bool = True
    silence_threshold_seconds: float | None = None
    last_seq: int = 0
    # With auth off: what a later ``config`` must carry to resume this session.
    resume_secret: str | None = Field(default=None, repr=False)
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "resume_secret"})


class Vad(ServerMessage):
    type: Literal["vad"] = "vad"
    event: Literal["speech_start", "speech_end"]
    t: float
    seq: int | None = None


class Realtime(ServerMessage):
    type: Literal["realtime"] = "realtime"
    segment_id: str
    text: str
    translation: str | None = None
    language: str | None = None
    seq: int | None = None


Word = bus.Word  # one definition of a timed word, on the bus and on the wire


class Final(ServerMessage):
    type: Literal["final"] = "final"
    segment_id: str
    text: str
    language: str | None = None
    language_probability: float | None = None
    #: What ``language_probability`` is relative to: ``set`` (renormalised over the
    #: session's source languages), ``all`` (every language the model knows) or ``hint``
    #: (given, not detected: the client named the language, or the model is English-only; 1.0).
    language_probability_scope: str | None = None
    start: float
    end: float
    words: list[Word] | None = None
    translation: str | None = None
    worker: str = ""
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "words"})


class TurnEnd(ServerMessage):
    """A turn (the speech up to ``SILENCE_THRESHOLD_SECONDS`` of silence) is over; it comes right
    after the turn's last final (and that final's translation). ``segment_id`` names that final.
    Additive: a client that only reads ``realtime`` and ``final`` ignores it."""

    type: Literal["turn_end"] = "turn_end"
    segment_id: str
    start: float
    end: float
    seq: int | None = None


class Translation(ServerMessage):
    type: Literal["translation"] = "translation"
    segment_id: str
    text: str
    source_language: str | None = None
    target_language: str
    worker: str = ""
    seq: int | None = None


class Error(ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    segment_id: str | None = None  # the utterance it concerns, when it concerns one
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "segment_id"})

    @classmethod
    def from_exception(cls, exc: ProtocolError, seq: int | None = None) -> Error:
        return cls(code=exc.code, message=exc.message, seq=seq)


class Done(ServerMessage):
    type: Literal["done"] = "done"
    seq: int | None = None


class Pong(ServerMessage):
    type: Literal["pong"] = "pong"
    id: str | int | None = None
    t: float | None = None  # the gateway's clock, for round-trip and skew estimates
    seq: int | None = None
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"seq", "id", "t"})


def realtime_from_bus(result: bus.PartialResult, seq: int | None = None) -> Realtime:
    return Realtime(
        segment_id=result.segment_id,
        text=result.text,
        translation=result.translation,
        language=result.language,
        seq=seq,
    )


def final_from_bus(result: bus.FinalResult, seq: int | None = None) -> Final:
    return Final(
        segment_id=result.segment_id,
        text=result.text,
        language=result.language,
        language_probability=result.language_probability,
        language_probability_scope=result.language_probability_scope,
        start=result.start,
        end=result.end,
        words=result.words,
        worker=result.worker,
        seq=seq,
    )


def translation_from_bus(result: bus.TranslationResult, seq: int | None = None) -> Translation:
    return Translation(
        segment_id=result.segment_id,
        text=result.text,
        source_language=result.source_language,
        target_language=result.target_language,
        worker=result.worker,
        seq=seq,
    )
