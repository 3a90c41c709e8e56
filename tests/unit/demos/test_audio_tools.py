"""Unit tests for the pure audio helpers used by the generator and the client."""

from __future__ import annotations

import numpy as np
import pytest

from demos.audio_tools import (
    Layout,
    assemble,
    normalise_peak,
    read_wav_pcm16,
    resample,
    trim_silence,
    wav_bytes,
)


def test_trim_silence_cuts_quiet_edges_only() -> None:
    audio = np.concatenate([np.zeros(100), np.full(50, 0.5), np.zeros(10), np.full(5, -0.5),
                            np.full(30, 0.001)]).astype(np.float32)
    trimmed = trim_silence(audio)
    assert trimmed.size == 65
    assert trimmed[0] == 0.5 and trimmed[-1] == -0.5
    assert trim_silence(np.zeros(10, dtype=np.float32)).size == 0


def test_assemble_places_utterances_at_exact_offsets() -> None:
    a = np.ones(1600, dtype=np.float32)
    b = np.ones(800, dtype=np.float32)
    out = assemble([a, b], 16000, Layout(lead=0.5, gap=1.0, tail=0.25))
    assert out.spans == ((0.5, 0.6), (1.6, 1.65))
    assert out.audio.size == 8000 + 1600 + 16000 + 800 + 4000
    start, end = (round(x * 16000) for x in out.spans[1])
    assert np.all(out.audio[start:end] == 1.0)
    assert out.audio[start - 1] == 0.0 and out.audio[end] == 0.0


def test_wav_roundtrip_and_determinism() -> None:
    audio = normalise_peak(np.sin(np.linspace(0, 100, 4000)).astype(np.float32))
    data = wav_bytes(audio, 16000)
    assert data == wav_bytes(audio.copy(), 16000)
    pcm, rate = read_wav_pcm16(data)
    assert rate == 16000
    samples = np.frombuffer(pcm, dtype="<i2")
    assert samples.size == 4000
    assert np.abs(samples).max() == pytest.approx(0.7 * 32767, abs=1)


def test_resample_changes_length_by_rate_ratio() -> None:
    audio = np.zeros(22050, dtype=np.float32)
    assert resample(audio, 22050, 16000).size == 16000
    assert resample(audio, 16000, 16000).size == 22050
