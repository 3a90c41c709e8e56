"""Unit tests of the client protocol v1: parsing, error codes, server message shapes, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import bus
from gateway.protocol import (
    AuthMessage,
    ConfigMessage,
    Done,
    EndMessage,
    Error,
    ErrorCode,
    Final,
    FlushMessage,
    PingMessage,
    Pong,
    ProtocolError,
    Ready,
    Realtime,
    Translation,
    Vad,
    Word,
    final_from_bus,
    parse_binary,
    parse_text,
    realtime_from_bus,
    translation_from_bus,
)


def test_simple_messages() -> None:
    assert isinstance(parse_text('{"type": "flush"}'), FlushMessage)
    assert isinstance(parse_text('{"type": "end"}'), EndMessage)
    ping = parse_text('{"type": "ping", "id": 7}')
    assert isinstance(ping, PingMessage) and ping.id == 7
    auth = parse_text('{"type": "auth", "token": "s3cret"}')
    assert isinstance(auth, AuthMessage) and auth.token == "s3cret"
    assert "s3cret" not in repr(auth) and "s3cret" not in str(auth)


def test_full_config() -> None:
    msg = parse_text(
        json.dumps(
            {
                "type": "config",
                "source_language": "auto",
                "target_language": "DE",
                "sample_rate": 44100,
                "partials": False,
                "word_timestamps": True,
                "session_id": "abc-123",
                "last_seq": 41,
            }
        )
    )
    assert msg == ConfigMessage(
        source_language="auto",
        target_language="de",
        sample_rate=44100,
        partials=False,
        word_timestamps=True,
        session_id="abc-123",
        last_seq=41,
    )


@pytest.mark.parametrize(
    ("given_code", "normalised"), [("en", "en"), ("EN", "en"), ("en-US", "en"), ("pt_BR", "pt"), ("yue", "yue")]
)
def test_languages_are_normalised(given_code: str, normalised: str) -> None:
    msg = parse_text(json.dumps({"type": "config", "source_language": given_code}))
    assert isinstance(msg, ConfigMessage) and msg.source_language == normalised


def test_config_fields_left_out_mean_unchanged_and_null_target_means_off() -> None:
    empty = parse_text('{"type": "config"}')
    assert isinstance(empty, ConfigMessage)
    assert empty.target_language is None and not empty.sets_target_language
    off = parse_text('{"type": "config", "target_language": null}')
    assert isinstance(off, ConfigMessage)
    assert off.target_language is None and off.sets_target_language
    on = parse_text('{"type": "config", "target_language": "fr"}')
    assert isinstance(on, ConfigMessage) and on.sets_target_language


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_supported_sample_rates(rate: int) -> None:
    msg = parse_text(json.dumps({"type": "config", "sample_rate": rate}))
    assert isinstance(msg, ConfigMessage) and msg.sample_rate == rate


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", ErrorCode.BAD_JSON),
        ("{", ErrorCode.BAD_JSON),
        ("hello", ErrorCode.BAD_JSON),
        ("[" * 16_000, ErrorCode.BAD_JSON),
        ("[" * 100_000, ErrorCode.FRAME_TOO_LARGE),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('"config"', ErrorCode.INVALID_MESSAGE),
        ("{}", ErrorCode.INVALID_MESSAGE),
        ('{"type": 5}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "subscribe"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "CONFIG"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "config", "sample_rate": "16000"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "sample_rate": 16000.5}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "sample_rate": true}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "sample_rate": 7999}', ErrorCode.UNSUPPORTED_SAMPLE_RATE),
        ('{"type": "config", "sample_rate": 96000}', ErrorCode.UNSUPPORTED_SAMPLE_RATE),
        ('{"type": "config", "sample_rate": 0}', ErrorCode.UNSUPPORTED_SAMPLE_RATE),
        ('{"type": "config", "partials": "yes"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "partials": 1}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "source_language": "klingon"}', ErrorCode.INVALID_LANGUAGE),
        ('{"type": "config", "source_language": "%s"}' % ("x" * 40), ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "source_language": "x1"}', ErrorCode.INVALID_LANGUAGE),
        ('{"type": "config", "source_language": "xx"}', ErrorCode.UNSUPPORTED_LANGUAGE),
        ('{"type": "config", "target_language": "1"}', ErrorCode.INVALID_LANGUAGE),
        ('{"type": "config", "target_language": 3}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "last_seq": 3}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "session_id": "a", "last_seq": -1}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "session_id": "has space"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "session_id": ""}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "config", "volume": 3}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "flush", "now": true}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "ping", "id": [1]}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "auth"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "auth", "token": ""}', ErrorCode.INVALID_MESSAGE),
    ],
)
def test_bad_text_gets_a_stable_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_text(text)
    assert info.value.code == code
    assert info.value.message  # something a person can read


@pytest.mark.parametrize("depth", [1000, 3000, 8000])
@pytest.mark.parametrize("kind", ["config", "auth"])
def test_deeply_nested_json_is_bad_input_not_a_recursion_error(depth: int, kind: str) -> None:
    field = "token" if kind == "auth" else "source_language"
    text = f'{{"type": "{kind}", "{field}": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(ProtocolError) as info:
        parse_text(text)
    assert info.value.code in (ErrorCode.BAD_JSON, ErrorCode.INVALID_MESSAGE)


def test_deep_nesting_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.protocol as protocol_module

    def no_parsing(_: str) -> Any:
        raise AssertionError("the frame was parsed")

    monkeypatch.setattr(protocol_module, "json", type("NoJson", (), {"loads": staticmethod(no_parsing)}))
    with pytest.raises(ProtocolError) as info:
        parse_text('{"type": "ping", "id": ' + "[" * 300 + "]" * 300 + "}")
    assert info.value.code == ErrorCode.BAD_JSON


def test_a_256_kib_frame_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.protocol as protocol_module

    def no_parsing(_: str) -> Any:
        raise AssertionError("the frame was parsed")

    frame = json.dumps({"type": "config", **{f"key{i}": i for i in range(30_000)}})
    assert len(frame) >= 256 * 1024
    monkeypatch.setattr(protocol_module, "json", type("NoJson", (), {"loads": staticmethod(no_parsing)}))
    with pytest.raises(ProtocolError) as info:
        parse_text(frame)
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


def test_thousands_of_unknown_keys_are_refused_without_validating_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_validation(*_: Any, **__: Any) -> Any:
        raise AssertionError("pydantic was asked to make one error per unknown key")

    keys = {f"k{i}": 0 for i in range(1400)}
    frame = json.dumps({"type": "config", "sample_rate": 16000, **keys})
    assert len(frame) < 16384
    monkeypatch.setattr(ConfigMessage, "model_validate", no_validation)
    with pytest.raises(ProtocolError) as info:
        parse_text(frame)
    assert info.value.code == ErrorCode.INVALID_MESSAGE
    assert "'k0'" in info.value.message and "and 1395 more" in info.value.message
    assert len(info.value.message) < 200


def test_a_validation_summary_formats_only_the_first_errors() -> None:
    from pydantic import BaseModel, ValidationError

    from gateway.protocol import MAX_ERRORS_SHOWN, _summary

    class Many(BaseModel):
        values: list[int]

    with pytest.raises(ValidationError) as info:
        Many.model_validate({"values": ["x"] * 1000})
    summary = _summary(info.value)
    assert summary.count("values.") == MAX_ERRORS_SHOWN
    assert summary.endswith(f"and {1000 - MAX_ERRORS_SHOWN} more")


def test_error_message_does_not_echo_a_secret() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_text('{"type": "auth", "token": "hunter2", "extra": "hunter2"}')
    assert "hunter2" not in info.value.message and "hunter2" not in str(info.value)


def test_binary_frames() -> None:
    pcm = parse_binary(np.array([0, 1, -1, 32767, -32768], "<i2").tobytes())
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [0, 1, -1, 32767, -32768]
    assert len(parse_binary(b"")) == 0
    assert parse_binary(bytearray(b"\x01\x00")).tolist() == [1]
    with pytest.raises(ProtocolError) as info:
        parse_binary(b"\x00\x01\x02")
    assert info.value.code == ErrorCode.ODD_BYTE_COUNT
    with pytest.raises(ProtocolError) as info:
        parse_binary(bytes(2048), max_bytes=1024)
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


# ------------------------------------------------------------------ server messages


def keys(message: Any) -> set[str]:
    return set(json.loads(message.to_json()))


def test_server_messages_have_exactly_the_designed_fields() -> None:
    ready = Ready(session_id="s1", sample_rate=16000, source_language="auto", target_language=None)
    assert keys(ready) == {"type", "session_id", "protocol", "sample_rate", "source_language", "target_language",
                           "partials", "silence_threshold_seconds", "last_seq"}
    assert json.loads(ready.to_json())["protocol"] == 1
    assert keys(Vad(event="speech_start", t=1.25, seq=1)) == {"type", "event", "t", "seq"}
    assert keys(Realtime(segment_id="s1:0", text="hel", seq=2)) == {
        "type", "segment_id", "text", "translation", "language", "seq"
    }
    final = Final(segment_id="s1:0", text="hello", language="en", language_probability=0.9,
                  start=1.0, end=2.0, worker="w1", seq=3)
    assert keys(final) == {
        "type", "segment_id", "text", "language", "language_probability", "language_probability_scope",
        "start", "end", "translation", "worker", "seq",
    }
    with_words = final.model_copy(update={"words": [Word(word="hello", start=1.0, end=2.0, probability=0.9)]})
    assert "words" in keys(with_words)
    assert keys(Translation(segment_id="s1:0", text="hallo", source_language="en",
                            target_language="de", worker="t1", seq=4)) == {
        "type", "segment_id", "text", "source_language", "target_language", "worker", "seq"
    }
    assert keys(Error(code="overloaded", message="busy")) == {"type", "code", "message"}
    assert keys(Error(code="overloaded", message="busy", segment_id="s:1")) == {"type", "code", "message", "segment_id"}
    assert keys(Done(seq=9)) == {"type", "seq"}
    assert keys(Pong()) == {"type"} and keys(Pong(id="x")) == {"type", "id"}


def test_the_seeds_minimal_client_reads_type_text_translation() -> None:
    final = json.loads(Final(segment_id="s:0", text="hi", start=0, end=1, seq=1).to_json())
    assert final["type"] == "final" and final["text"] == "hi" and final["translation"] is None
    realtime = json.loads(Realtime(segment_id="s:0", text="h", seq=2).to_json())
    assert realtime["type"] == "realtime" and realtime["translation"] is None


def test_to_json_keeps_unicode_and_is_compact() -> None:
    text = Translation(segment_id="s:0", text="Grüße 你好", target_language="de", seq=1).to_json()
    assert "Grüße 你好" in text and ", " not in text


def test_error_from_protocol_error() -> None:
    err = Error.from_exception(ProtocolError("bad_json", "not json"), seq=None)
    assert json.loads(err.to_json()) == {"type": "error", "code": "bad_json", "message": "not json"}


def test_conversion_from_bus_results() -> None:
    final = bus.FinalResult(
        session_id="s", segment_id="s:0", utterance_index=0, text="hello", language="en",
        language_probability=0.98, start=1.0, end=2.0, worker="stt-1",
        words=[bus.Word(word="hello", start=1.0, end=2.0, probability=0.9)],
    )
    out = json.loads(final_from_bus(final, seq=5).to_json())
    assert out["seq"] == 5 and out["words"][0]["word"] == "hello" and out["translation"] is None
    partial = bus.PartialResult(session_id="s", segment_id="s:1", utterance_index=1, partial_seq=2, text="he")
    assert json.loads(realtime_from_bus(partial, seq=6).to_json())["text"] == "he"
    tr = bus.TranslationResult(session_id="s", segment_id="s:0", utterance_index=0, text="hallo",
                               source_language="en", target_language="de", worker="tr-1")
    assert json.loads(translation_from_bus(tr, seq=7).to_json())["target_language"] == "de"


# ------------------------------------------------------------------ fuzzing

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    ["source_language", "target_language", "sample_rate", "partials", "word_timestamps",
     "session_id", "last_seq", "token", "id", "type"]
)
_messages = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from(["config", "flush", "end", "ping", "auth", "other", ""]) | st.text(max_size=6),
    st.dictionaries(_fields | st.text(max_size=6), _json_values, max_size=6),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_any_text_raises_only_protocol_error(text: str) -> None:
    try:
        parse_text(text)
    except ProtocolError as exc:
        assert exc.code and exc.message


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages)
def test_fuzz_message_shaped_json_raises_only_protocol_error(obj: dict[str, Any]) -> None:
    try:
        msg = parse_text(json.dumps(obj))
    except ProtocolError as exc:
        assert exc.code and exc.message
    else:
        assert msg.type == obj["type"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_fuzz_any_bytes(data: bytes) -> None:
    try:
        pcm = parse_binary(data)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.ODD_BYTE_COUNT and len(data) % 2
    else:
        assert len(pcm) * 2 == len(data)
    try:
        parse_text(data.decode("utf-8", "surrogateescape"))
    except ProtocolError:
        pass
