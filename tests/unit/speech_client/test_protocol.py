"""The client package's messages and session state, without sockets."""

from __future__ import annotations

import json

import pytest

from speech_client import (
    ClientSession,
    Config,
    Done,
    End,
    Error,
    ErrorCode,
    Final,
    ProtocolError,
    Ready,
    Realtime,
    Translation,
    Unknown,
    parse_server_message,
)

READY = (
    '{"type":"ready","session_id":"s1","protocol":1,"sample_rate":16000,'
    '"source_language":"auto","target_language":null}'
)


def _ready(session_id: str = "s1", **extra: object) -> Ready:
    return Ready(session_id=session_id, sample_rate=16000, source_language="auto", target_language=None, **extra)


def test_parse_each_type() -> None:
    assert parse_server_message(READY) == _ready()
    partial = parse_server_message('{"type":"realtime","segment_id":"s1:3","text":"hi","translation":null,"seq":4}')
    assert partial == Realtime(segment_id="s1:3", text="hi", seq=4)
    final = parse_server_message(
        json.dumps({"type": "final", "segment_id": "s1:3", "text": " Hi.", "language": "en",
                    "language_probability": 0.9, "start": 0.1, "end": 1.2, "seq": 5, "worker": "w1",
                    "words": [{"word": " Hi.", "start": 0.1, "end": 1.2, "probability": 0.8}]})
    )
    assert isinstance(final, Final) and final.text == " Hi." and final.end == 1.2 and final.worker == "w1"
    assert final.words is not None and final.words[0].word == " Hi."
    translation = parse_server_message(
        '{"type":"translation","segment_id":"s1:3","text":"Hola.","source_language":"en","target_language":"es","seq":6}'
    )
    assert translation == Translation(
        segment_id="s1:3", text="Hola.", source_language="en", target_language="es", seq=6
    )
    error = parse_server_message('{"type":"error","code":"overloaded","message":"busy"}')
    assert error == Error(code="overloaded", message="busy")
    assert isinstance(error, Error) and error.known_code is ErrorCode.OVERLOADED
    assert parse_server_message('{"type":"done","seq":7}') == Done(seq=7)


def test_a_newer_gateway_does_not_break_the_client() -> None:
    """Unknown types become Unknown, unknown fields are ignored, unknown codes still parse."""
    future = parse_server_message('{"type":"future_thing","x":1,"seq":9}')
    assert isinstance(future, Unknown) and future.data["x"] == 1 and future.seq == 9
    ready = parse_server_message(READY[:-1] + ',"new_field":[1,2]}')
    assert ready == _ready()
    error = parse_server_message('{"type":"error","code":"brand_new_code","message":"?"}')
    assert isinstance(error, Error) and error.code == "brand_new_code" and error.known_code is None


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1,2]", '{"no":"type"}', '{"type":"ready"}', '{"type":"final","segment_id":"a"}',
     '{"type":"vad","event":"nonsense","t":0}', "[" * 5000, b"\xff\xfe"],
)
def test_bad_frames_raise_protocol_error(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_server_message(raw)


def test_config_sends_only_what_is_set_and_null_means_off() -> None:
    assert json.loads(Config(source_language="auto", target_language=None).to_json()) == {
        "type": "config", "source_language": "auto", "target_language": None,
    }
    assert json.loads(Config(partials=True).to_json()) == {"type": "config", "partials": True}
    assert json.loads(End().to_json()) == {"type": "end"}
    with pytest.raises(ValueError, match="source_langauge"):
        Config.model_validate({"source_langauge": "en"})  # a typo is caught here, not by the gateway


def test_session_tracks_ready_and_drops_replays() -> None:
    session = ClientSession()
    assert session.resume_fields() == {} and not session.is_ready
    assert session.accept(_ready("abc", resume_secret="sekrit"))
    assert session.accept(Final(segment_id="abc:1", text="a", start=0, end=1, seq=1))
    assert session.accept(Translation(segment_id="abc:1", text="b", target_language="de", seq=2))
    assert session.resume_fields() == {"session_id": "abc", "last_seq": 2, "resume_secret": "sekrit"}
    assert not session.accept(Final(segment_id="abc:1", text="a", start=0, end=1, seq=1))  # a replay
    assert not session.accept(Translation(segment_id="abc:1", text="b", target_language="de", seq=2))
    assert session.duplicates == 2
    assert session.accept(Done(seq=3))
    assert "sekrit" not in repr(session) and "sekrit" not in repr(session.ready)


def test_resume_config_carries_settings_and_the_session() -> None:
    session = ClientSession()
    session.accept(_ready("abc"))
    session.accept(Final(segment_id="abc:0", text="a", start=0, end=1, seq=4))
    config = session.resume_config(sample_rate=16000, target_language=None)
    assert json.loads(config.to_json()) == {
        "type": "config", "sample_rate": 16000, "target_language": None, "session_id": "abc", "last_seq": 4,
    }


def test_a_new_session_in_ready_starts_the_seq_again() -> None:
    """A resume the gateway refused (unknown_session) gives a new session counting from 1."""
    session = ClientSession()
    session.accept(_ready("old", resume_secret="old-secret"))
    session.accept(Done(seq=40))
    assert session.accept(_ready("new"))
    assert session.accept(Final(segment_id="new:0", text="a", start=0, end=1, seq=1))
    assert session.resume_fields() == {"session_id": "new", "last_seq": 1}
