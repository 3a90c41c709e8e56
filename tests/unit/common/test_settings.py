"""Settings: the seed's names and defaults, validation, and secrets that never print."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import GatewaySettings, SttSettings, TranslationSettings


def test_seed_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_PORT", "HEALTH_PORT", "REDIS_URL", "SILENCE_THRESHOLD_SECONDS", "MODEL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    g = GatewaySettings()
    assert (g.gateway_port, g.health_port) == (5026, 8080)
    assert g.redis_url.get_secret_value() == "redis://localhost:6379"
    assert g.silence_threshold_seconds == 2.0
    assert g.sample_rate == 16000
    assert g.webrtc_sensitivity == 3
    assert g.silero_sensitivity == 0.7
    assert g.pre_speech_buffer_seconds == 1.0
    assert g.max_queue_depth == 100
    assert g.stt_send_interval == 0.5
    s = SttSettings()
    assert s.health_port == 8081
    assert s.model_size == "base"  # seed: large-v3, which needs a download; base ships in a package
    assert s.device == "auto"  # seed: cuda, which this machine may not have
    assert (s.beam_size, s.vad_filter, s.normalize_audio) == (5, True, False)
    t = TranslationSettings()
    assert t.health_port == 8082
    assert t.easynmt_model == "opus-mt"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILENCE_THRESHOLD_SECONDS", "0.8")
    monkeypatch.setenv("VAD_FILTER", "false")
    monkeypatch.setenv("DEVICE", "cpu")
    assert GatewaySettings().silence_threshold_seconds == 0.8
    s = SttSettings()
    assert s.vad_filter is False
    assert s.device == "cpu"


@pytest.mark.parametrize(
    ("name", "value"),
    [("WEBRTC_SENSITIVITY", "7"), ("SILERO_SENSITIVITY", "1.5"), ("MAX_SEGMENT_SECONDS", "45"),
     ("GATEWAY_PORT", "notaport"), ("LOG_LEVEL", "chatty")],
)
def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        GatewaySettings()
    assert name.lower() in str(info.value).lower()


def test_settings_are_frozen() -> None:
    g = GatewaySettings()
    with pytest.raises(ValidationError):
        g.gateway_port = 1  # type: ignore[misc]


def test_redis_password_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:hunter2-secret@redis:6379/0")
    g = GatewaySettings()
    assert "hunter2-secret" not in repr(g)
    assert "hunter2-secret" not in str(g)
    assert "hunter2-secret" not in g.model_dump_json()
    assert g.redis_url.get_secret_value().endswith("@redis:6379/0")
