"""The client package and the gateway agree on protocol v1.

- every server message type the gateway defines has a client model with the same fields,
  the same required ones and the same fields left out when None;
- every such message, as the gateway renders it (all fields set, or only the required ones),
  parses with the client into the same values;
- every client message the package builds is accepted by the gateway's parser;
- ``ErrorCode`` of both sides lists exactly the codes the services' sources send.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import speech_client.protocol as client
from gateway import protocol as gateway
from tests.error_codes import codes_sent

WORDS = [gateway.Word(word=" Hello", start=0.1, end=0.4, probability=0.9)]

#: Every gateway server message with every field set (None only where None is the point).
FULL: dict[str, gateway.ServerMessage] = {
    "ready": gateway.Ready(session_id="s-1", protocol=1, sample_rate=48000, source_language="auto",
                           target_language="de", partials=False, silence_threshold_seconds=0.8,
                           last_seq=7, resume_secret="r" * 43, seq=8),
    "vad": gateway.Vad(event="speech_end", t=1.25, seq=9),
    "realtime": gateway.Realtime(segment_id="s-1:3", text="hel", translation="hal", language="en", seq=10),
    "final": gateway.Final(segment_id="s-1:3", text=" Hello.", language="en", language_probability=0.97,
                           start=0.1, end=0.9, words=WORDS, translation=None, worker="stt-1", seq=11),
    "translation": gateway.Translation(segment_id="s-1:3", text="Hallo.", source_language="en",
                                       target_language="de", worker="mt-1", seq=12),
    "turn_end": gateway.TurnEnd(segment_id="s-1:3", start=0.1, end=0.9, seq=13),
    "error": gateway.Error(code="overloaded", message="busy", segment_id="s-1:4", seq=13),
    "done": gateway.Done(seq=14),
    "pong": gateway.Pong(id="p1", t=1234.5, seq=None),
}

#: The same with only what is required.
MINIMAL: dict[str, gateway.ServerMessage] = {
    "ready": gateway.Ready(session_id="s-1", sample_rate=16000, source_language="en", target_language=None),
    "vad": gateway.Vad(event="speech_start", t=0.0),
    "realtime": gateway.Realtime(segment_id="s-1:0", text=""),
    "final": gateway.Final(segment_id="s-1:0", text="", start=0.0, end=0.0),
    "translation": gateway.Translation(segment_id="s-1:0", text="", target_language="es"),
    "turn_end": gateway.TurnEnd(segment_id="s-1:0", start=0.0, end=0.0),
    "error": gateway.Error(code="bad_json", message="x"),
    "done": gateway.Done(),
    "pong": gateway.Pong(),
}


def _gateway_server_models() -> dict[str, type[gateway.ServerMessage]]:
    found: dict[str, type[gateway.ServerMessage]] = {}
    todo = list(gateway.ServerMessage.__subclasses__())
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        found[model.model_fields["type"].default] = model
    return found


CLIENT_MODELS: dict[str, type[Any]] = {
    m.model_fields["type"].default: m
    for m in (client.Ready, client.Vad, client.Realtime, client.Final, client.Translation,
              client.TurnEnd, client.Error, client.Done, client.Pong)
}


def test_every_gateway_message_type_has_a_client_model_and_a_sample() -> None:
    types = set(_gateway_server_models())
    assert types == set(CLIENT_MODELS) == client.SERVER_TYPES
    assert types == set(FULL) == set(MINIMAL)


@pytest.mark.parametrize("kind", sorted(_gateway_server_models()))
def test_fields_required_ones_and_omitted_ones_agree(kind: str) -> None:
    ours, theirs = CLIENT_MODELS[kind], _gateway_server_models()[kind]
    assert set(ours.model_fields) == set(theirs.model_fields)
    for name, info in theirs.model_fields.items():
        assert ours.model_fields[name].is_required() == info.is_required(), name
        assert ours.model_fields[name].default == info.default, name
    assert ours._omit_if_none == theirs._omit_if_none


@pytest.mark.parametrize("samples", [FULL, MINIMAL], ids=["full", "minimal"])
@pytest.mark.parametrize("kind", sorted(FULL))
def test_what_the_gateway_sends_the_client_parses_to_the_same_values(
    samples: dict[str, gateway.ServerMessage], kind: str
) -> None:
    sent = samples[kind]
    parsed = client.parse_server_message(sent.to_json())
    assert type(parsed) is CLIENT_MODELS[kind]
    assert parsed.to_dict() == sent.to_dict()
    assert json.loads(parsed.to_json()) == json.loads(sent.to_json())


def test_every_client_message_is_accepted_by_the_gateway() -> None:
    everything = client.Config(
        source_language="en", target_language="de", sample_rate=48000, partials=False,
        word_timestamps=True, session_id="s-1", last_seq=3, resume_secret="secret",
    )
    assert set(client.Config.model_fields) == set(gateway.ConfigMessage.model_fields)
    parsed = gateway.parse_text(everything.to_json())
    assert isinstance(parsed, gateway.ConfigMessage)
    assert parsed.model_dump() == {**everything.model_dump()}
    # Translation off is an explicit null, and is understood as such.
    off = gateway.parse_text(client.Config(target_language=None).to_json())
    assert isinstance(off, gateway.ConfigMessage) and off.sets_target_language and off.target_language is None
    assert not gateway.parse_text(client.Config(partials=True).to_json()).sets_target_language  # type: ignore[union-attr]
    for message, model in [
        (client.Flush(), gateway.FlushMessage),
        (client.End(), gateway.EndMessage),
        (client.Ping(), gateway.PingMessage),
        (client.Ping(id=5), gateway.PingMessage),
        (client.Auth(token="t.o.k"), gateway.AuthMessage),
    ]:
        assert isinstance(gateway.parse_text(message.to_json()), model)


def test_error_codes_are_the_codes_actually_sent() -> None:
    sent = codes_sent()
    gateway_codes = {v for k, v in vars(gateway.ErrorCode).items() if k.isupper()}
    client_codes = {c.value for c in client.ErrorCode}
    assert len(sent) > 20, "the scan found too little: is it still looking at the right calls?"
    assert set(sent) - gateway_codes == set(), "sent but missing from gateway.protocol.ErrorCode"
    assert gateway_codes - set(sent) == set(), "in gateway.protocol.ErrorCode but never sent"
    assert client_codes == gateway_codes


def test_the_code_scan_sees_the_ways_codes_are_sent() -> None:
    sent = codes_sent()
    assert "gateway/protocol.py" in sent["bad_json"]  # ProtocolError(ErrorCode.X, ...)
    assert "common/auth.py" in sent["token_invalid"]  # AuthError(CONSTANT, ...)
    assert "gateway/limits.py" in sent["locked_out"]  # Refusal(CONSTANT, ...)
    assert "translation_worker/worker.py" in sent["translation_failed"]  # code=x or "literal"
