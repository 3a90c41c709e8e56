"""Protocol v1 parsing, message builders and resume bookkeeping."""

from __future__ import annotations

import json

import pytest

from client_gui.protocol import (
    Done,
    Final,
    Partial,
    ProtocolError,
    Ready,
    ResumeState,
    ServerError,
    Translation,
    Unknown,
    config_message,
    control_message,
    parse_server_message,
)


def test_parse_each_type() -> None:
    ready = parse_server_message('{"type":"ready","session_id":"s1","protocol":1,"sample_rate":16000}')
    assert ready == Ready(session_id="s1", protocol=1, sample_rate=16000)
    partial = parse_server_message(
        '{"type":"realtime","segment_id":3,"text":"hi","translation":null,"seq":4}'
    )
    assert partial == Partial(segment_id=3, text="hi", seq=4)
    final = parse_server_message(
        json.dumps({"type": "final", "segment_id": 3, "text": " Hi.", "language": "en",
                    "language_probability": 0.9, "start": 0.1, "end": 1.2, "seq": 5, "worker": "w1"})
    )
    assert isinstance(final, Final) and final.text == " Hi." and final.end == 1.2 and final.worker == "w1"
    translation = parse_server_message(
        '{"type":"translation","segment_id":3,"text":"Hola.","source_language":"en","target_language":"es","seq":6}'
    )
    assert translation == Translation(3, "Hola.", "en", "es", None, 6)
    assert parse_server_message('{"type":"error","code":"overloaded","message":"busy"}') == ServerError(
        "overloaded", "busy"
    )
    assert parse_server_message('{"type":"done","seq":7}') == Done(seq=7)
    assert isinstance(parse_server_message('{"type":"future_thing","x":1}'), Unknown)


@pytest.mark.parametrize("raw", ["not json", "[1,2]", '{"no":"type"}', '{"type":"ready"}'])
def test_bad_frames_raise_protocol_error(raw: str) -> None:
    with pytest.raises(ProtocolError):
        parse_server_message(raw)


def test_builders() -> None:
    assert json.loads(config_message(source_language="auto", target_language=None)) == {
        "type": "config", "source_language": "auto", "target_language": None,
    }
    assert json.loads(control_message("end")) == {"type": "end"}
    with pytest.raises(ValueError):
        control_message("reboot")


def test_resume_state_tracks_session_and_drops_replays() -> None:
    state = ResumeState()
    assert state.resume_fields() == {}
    assert state.accept(Ready(session_id="abc"))
    assert state.accept(Final(segment_id=1, text="a", seq=1))
    assert state.accept(Translation(segment_id=1, text="b", seq=2))
    assert state.resume_fields() == {"session_id": "abc", "last_seq": 2}
    assert not state.accept(Final(segment_id=1, text="a", seq=1))  # replayed after reconnect
    assert state.accept(Done(seq=3))


def test_turn_end_is_parsed() -> None:
    from client_gui.protocol import TurnEnd

    msg = parse_server_message('{"type":"turn_end","segment_id":"s:3","start":0.5,"end":9.9,"seq":12}')
    assert msg == TurnEnd(segment_id="s:3", start=0.5, end=9.9, seq=12)
