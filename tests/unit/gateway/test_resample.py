"""Unit tests of the streaming resampler that brings client audio to 16 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.resample import Resampler, UnsupportedSampleRate, check_sample_rate


def tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def stream(r: Resampler, pcm: np.ndarray, chunk: int) -> np.ndarray:
    parts = [r.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    parts.append(r.process(np.zeros(0, np.int16), last=True))
    return np.concatenate(parts)


def test_16k_passes_through_untouched() -> None:
    r = Resampler(16000)
    pcm = tone(16000, 0.1)
    assert r.passthrough and np.array_equal(r.process(pcm), pcm)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000])
def test_rates_become_16k_with_the_pitch_kept_and_time_aligned(rate: int) -> None:
    pcm = tone(rate, 2.0, freq=440.0)
    pcm[rate : rate + 1] = 30000  # a click at exactly 1.0 s
    out = stream(Resampler(rate), pcm, chunk=rate // 50)
    assert out.dtype == np.int16
    assert abs(len(out) - 32000) <= 2
    spectrum = np.abs(np.fft.rfft(out[:16000].astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone is still 440 Hz
    residual = out.astype(np.float64) - tone(16000, 2.0, 440.0)[: len(out)]
    assert abs(int(np.argmax(np.abs(residual[8000:24000]))) + 8000 - 16000) <= 3  # the click, on time


def test_chunking_does_not_change_the_output() -> None:
    pcm = tone(44100, 1.0, freq=1000.0)
    a = stream(Resampler(44100), pcm, chunk=441)
    b = stream(Resampler(44100), pcm, chunk=4096)
    assert len(a) == len(b)
    assert np.max(np.abs(a.astype(np.int32) - b.astype(np.int32))) <= 2  # int16 rounding only


@pytest.mark.parametrize("rate", [0, 7999, 48001, 96000, -16000, 16000.0, "16000", True, None])
def test_unsupported_rates_raise_a_clear_error(rate: object) -> None:
    with pytest.raises(UnsupportedSampleRate, match="8000 to 48000"):
        check_sample_rate(rate)
    assert issubclass(UnsupportedSampleRate, ValueError)


def test_resampler_refuses_unsupported_rate() -> None:
    with pytest.raises(UnsupportedSampleRate):
        Resampler(96000)
