"""Noise or silence alone must yield no final text (issue 4, hallucination guards)."""

from __future__ import annotations

import numpy as np
import pytest

from stt_worker.engine import TranscribeRequest

pytestmark = pytest.mark.integration


def _noises() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    n = 16000 * 3
    t = np.arange(n) / 16000
    return {
        "digital_silence": np.zeros(n, np.float32),
        "near_silence": (1e-4 * rng.standard_normal(n)).astype(np.float32),
        "white_noise": (0.05 * rng.standard_normal(n)).astype(np.float32),
        "loud_white_noise": (0.3 * rng.standard_normal(n)).astype(np.float32),
        "hum_50hz": (0.1 * np.sin(2 * np.pi * 50 * t)).astype(np.float32),
        "brown_noise": (0.2 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)).astype(np.float32),
    }


NOISES = _noises()


@pytest.mark.parametrize("name", sorted(NOISES))
def test_noise_with_vad_filter_yields_no_text(tiny, name: str) -> None:
    t = tiny.transcribe(TranscribeRequest(NOISES[name]))
    assert t.text == "", (name, t)
    assert t.dropped_reason is not None


@pytest.mark.parametrize("name", sorted(NOISES))
def test_noise_without_vad_filter_is_stopped_by_the_guards(base_path, make_engine, name: str) -> None:
    # Silero filter off and normalisation on (the worst case): only the guards stand
    # between noise and invented text.  base detects a language, tiny.en does not.
    engine = make_engine(base_path, vad_filter=False, normalize_audio=True)
    for partial in (False, True):
        t = engine.transcribe(TranscribeRequest(NOISES[name], partial=partial))
        assert t.text == "", (name, partial, t)
        assert t.dropped_reason is not None


def test_noise_in_a_batch_yields_no_text(base_path, make_engine) -> None:
    engine = make_engine(base_path, batched=True, vad_filter=False)
    # Three noises are enough here: unreliable decodes re-run alone with temperature
    # fallback, which is what makes this slow.
    names = ["loud_white_noise", "brown_noise", "hum_50hz"]
    out = engine.transcribe_batch([TranscribeRequest(NOISES[n]) for n in names])
    assert [t.text for t in out] == [""] * len(names)


@pytest.mark.parametrize("partial", [False, True], ids=["final", "partial"])
def test_noise_alone_on_the_default_path_yields_no_text(base_path, make_engine, partial: bool) -> None:
    # The worker's path: transcribe_batch with the default options, one job at a time.
    engine = make_engine(base_path)
    for name, audio in NOISES.items():
        (t,) = engine.transcribe_batch([TranscribeRequest(audio, partial=partial)])
        assert t.text == "", (name, t)


def test_noise_alone_with_the_deployment_language_set_yields_no_text(base_path, make_engine) -> None:
    # The worker's default SOURCE_LANGUAGES: noise may be decoded in a language of the set
    # instead of Whisper's first guess, but the guards judge doubt by the unrestricted
    # probability, so restriction does not make noise look like confident speech.
    from common.languages import DEFAULT_SOURCE_LANGUAGES

    engine = make_engine(base_path, source_languages=DEFAULT_SOURCE_LANGUAGES, vad_filter=False)
    for partial in (False, True):
        out = engine.transcribe_batch([TranscribeRequest(audio, partial=partial) for audio in NOISES.values()])
        assert [t.text for t in out] == [""] * len(NOISES), [(t.language, t.text) for t in out]
