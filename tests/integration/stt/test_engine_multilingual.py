"""The engine with ``base`` (assembled from its packages): Spanish and Italian, detected."""

from __future__ import annotations

import pytest

from stt_worker.engine import TranscribeRequest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("language", ["es", "it"])
def test_spanish_and_italian_with_base_autodetect(base, stt, language: str) -> None:
    names = stt.names(language)
    out = [base.transcribe(TranscribeRequest(stt.audio(n))) for n in names]
    assert [t.language for t in out] == [language] * len(names)
    assert all(0.0 < t.language_probability <= 1.0 for t in out)
    assert stt.wer([stt.text(n) for n in names], [t.text for t in out]) <= stt.wer_limit[language]


def test_base_batched_autodetect_mixed_languages(base_path, make_engine, stt) -> None:
    batched = make_engine(base_path, batched=True)
    names = ["en_weather", "es_tiempo", "it_tempo"]
    out = batched.transcribe_batch([TranscribeRequest(stt.audio(n)) for n in names])
    assert [t.language for t in out] == ["en", "es", "it"]
    for name, t in zip(names, out, strict=True):
        limit = stt.wer_limit[stt.refs[name]["language"]]
        assert stt.wer([stt.text(name)], [t.text]) <= limit, (name, t.text)


def test_language_hint_skips_detection(base, stt) -> None:
    hinted = base.transcribe(TranscribeRequest(stt.audio("es_tren"), language="es"))
    assert hinted.language == "es" and hinted.language_probability == 1.0
    assert stt.wer([stt.text("es_tren")], [hinted.text]) <= stt.wer_limit["es"]


def test_auto_and_unsupported_language_hints_detect(base, stt) -> None:
    audio = stt.audio("es_tiempo")
    for hint in ("auto", "xx", ""):
        t = base.transcribe(TranscribeRequest(audio, language=hint, partial=True))
        assert t.language == "es", hint
        assert t.language_probability < 1.0
