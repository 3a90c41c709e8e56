"""Client side of protocol v1 (DESIGN.md section 3): message builders, parser, resume state.

Pure code: no sockets. Server messages become small dataclasses so the GUI never pokes at
raw dicts; unknown message types are kept as :class:`Unknown` rather than failing, so a newer
gateway does not break an older client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A frame from the gateway that is not a protocol v1 JSON message."""


@dataclass(frozen=True)
class Ready:
    session_id: str
    protocol: int | None = None
    sample_rate: int | None = None
    source_language: str | None = None
    target_language: str | None = None
    seq: int | None = None
    resume_secret: str | None = field(default=None, repr=False)  # auth off: needed to resume


@dataclass(frozen=True)
class Vad:
    event: str
    t: float | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Partial:
    segment_id: Any
    text: str
    translation: str | None = None
    language: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Final:
    segment_id: Any
    text: str
    language: str | None = None
    language_probability: float | None = None
    start: float | None = None
    end: float | None = None
    translation: str | None = None
    worker: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Translation:
    segment_id: Any
    text: str
    source_language: str | None = None
    target_language: str | None = None
    worker: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class ServerError:
    code: str
    message: str
    seq: int | None = None


@dataclass(frozen=True)
class Done:
    seq: int | None = None


@dataclass(frozen=True)
class Pong:
    seq: int | None = None


@dataclass(frozen=True)
class TurnEnd:
    """The turn whose last final is ``segment_id`` is over (streaming commits)."""

    segment_id: Any
    start: float | None = None
    end: float | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Unknown:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


ServerMessage = Ready | Vad | Partial | Final | Translation | TurnEnd | ServerError | Done | Pong | Unknown


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one text frame; raise :class:`ProtocolError` if it is not a typed JSON object."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("not a JSON object with a string 'type'")
    kind = data["type"]
    try:
        seq = _opt_int(data.get("seq"))
        if kind == "ready":
            return Ready(
                session_id=str(data["session_id"]),
                protocol=_opt_int(data.get("protocol")),
                sample_rate=_opt_int(data.get("sample_rate")),
                source_language=_opt_str(data.get("source_language")),
                target_language=_opt_str(data.get("target_language")),
                seq=seq,
                resume_secret=_opt_str(data.get("resume_secret")),
            )
        if kind == "vad":
            return Vad(event=str(data.get("event", "")), t=_opt_float(data.get("t")), seq=seq)
        if kind == "realtime":
            return Partial(
                segment_id=data.get("segment_id"),
                text=str(data.get("text") or ""),
                translation=_opt_str(data.get("translation")),
                language=_opt_str(data.get("language")),
                seq=seq,
            )
        if kind == "final":
            return Final(
                segment_id=data.get("segment_id"),
                text=str(data.get("text") or ""),
                language=_opt_str(data.get("language")),
                language_probability=_opt_float(data.get("language_probability")),
                start=_opt_float(data.get("start")),
                end=_opt_float(data.get("end")),
                translation=_opt_str(data.get("translation")),
                worker=_opt_str(data.get("worker")),
                seq=seq,
            )
        if kind == "translation":
            return Translation(
                segment_id=data.get("segment_id"),
                text=str(data.get("text") or ""),
                source_language=_opt_str(data.get("source_language")),
                target_language=_opt_str(data.get("target_language")),
                worker=_opt_str(data.get("worker")),
                seq=seq,
            )
        if kind == "error":
            return ServerError(
                code=str(data.get("code", "unknown")),
                message=str(data.get("message", "")),
                seq=seq,
            )
        if kind == "turn_end":
            return TurnEnd(segment_id=data.get("segment_id"), start=_opt_float(data.get("start")),
                           end=_opt_float(data.get("end")), seq=seq)
        if kind == "done":
            return Done(seq=seq)
        if kind == "pong":
            return Pong(seq=seq)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {kind!r} message: {exc}") from exc
    return Unknown(type=kind, data=data, seq=seq)


def config_message(**fields: Any) -> str:
    """A ``config`` text frame; fields set to ``None`` are sent as null (e.g. no target)."""
    return json.dumps({"type": "config", **fields})


def control_message(kind: str) -> str:
    """``flush``, ``end`` or ``ping``."""
    if kind not in {"flush", "end", "ping"}:
        raise ValueError(f"unknown control message {kind!r}")
    return json.dumps({"type": kind})


@dataclass
class ResumeState:
    """Session id and last result seq seen, to resume after a dropped connection.

    :meth:`accept` also drops results replayed twice (seq not above the last one seen),
    keeping "exactly once per connection" true across reconnects as seen by the GUI.
    """

    session_id: str | None = None
    last_seq: int | None = None
    resume_secret: str | None = field(default=None, repr=False)

    def accept(self, message: ServerMessage) -> bool:
        if isinstance(message, Ready):
            if message.session_id != self.session_id:
                self.resume_secret = None
            self.session_id = message.session_id
            self.resume_secret = message.resume_secret or self.resume_secret
            return True
        seq = message.seq
        if seq is None:
            return True
        if self.last_seq is not None and seq <= self.last_seq:
            return False
        self.last_seq = seq
        return True

    def resume_fields(self) -> dict[str, Any]:
        if self.session_id is None:
            return {}
        fields: dict[str, Any] = {"session_id": self.session_id}
        if self.last_seq is not None:
            fields["last_seq"] = self.last_seq
        if self.resume_secret:
            fields["resume_secret"] = self.resume_secret
        return fields
