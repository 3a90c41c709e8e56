"""SOURCE_LANGUAGES (settings) and config.source_languages (client protocol, bus job)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from common import bus
from common.languages import DEFAULT_SOURCE_LANGUAGES
from common.settings import GatewaySettings, SttSettings
from gateway import protocol


def test_setting_defaults_to_the_supported_languages_and_reads_a_comma_list(monkeypatch) -> None:
    assert SttSettings().source_languages == DEFAULT_SOURCE_LANGUAGES
    monkeypatch.setenv("SOURCE_LANGUAGES", "it, ES")
    assert SttSettings().source_languages == ("it", "es")
    assert GatewaySettings().source_languages == ("it", "es")
    monkeypatch.setenv("SOURCE_LANGUAGES", "all")
    assert SttSettings().source_languages == ()
    monkeypatch.setenv("SOURCE_LANGUAGES", "it,klingon")
    with pytest.raises(ValidationError, match="klingon"):
        SttSettings()


def test_client_narrows_per_session_and_bad_codes_get_a_clear_error() -> None:
    msg = protocol.parse_text('{"type": "config", "source_languages": ["IT", "de", "it"]}')
    assert isinstance(msg, protocol.ConfigMessage) and msg.source_languages == ["it", "de"]
    reset = protocol.parse_text('{"type": "config", "source_languages": []}')
    assert isinstance(reset, protocol.ConfigMessage) and reset.source_languages is None
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse_text('{"type": "config", "source_languages": ["it", "xx"]}')
    assert err.value.code == "unsupported_language" and "xx" in err.value.message
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.parse_text('{"type": "config", "source_languages": "it"}')
    assert err.value.code == "invalid_message"


def test_the_job_carries_the_session_set_and_the_final_its_scope() -> None:
    job = bus.AudioJob(kind="final", session_id="s", utterance_index=0, segment_id="s:0", start=0, end=1,
                       source_languages=["it", "de"], created_at=1.0)
    decoded, _ = bus.decode_audio_job(bus.encode_audio_job(job, np.zeros(160, np.int16)))
    assert decoded.source_languages == ["it", "de"]
    final = bus.FinalResult(session_id="s", segment_id="s:0", utterance_index=0, text="ciao", language="it",
                            language_probability=0.9, language_probability_scope="set",
                            language_outside_set="th", start=0, end=1)
    wire = protocol.final_from_bus(bus.decode_result(bus.encode_result(final))).to_dict()  # type: ignore[arg-type]
    assert wire["language_probability_scope"] == "set" and wire["language"] == "it"
