"""Decoding uploads: containers, resampling, the duration limit and unreadable bytes."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from gateway.audio_decode import AudioTooLong, UnreadableAudio, decode_to_pcm16k


def wav_bytes(pcm: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def test_stereo_44k_becomes_mono_16k_of_the_same_length() -> None:
    stereo = np.repeat(tone(2.0, 44100), 2)
    pcm = decode_to_pcm16k(wav_bytes(stereo, 44100, channels=2), max_seconds=60)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - 32000) <= 64
    # The tone survives: its dominant frequency is still 440 Hz.
    spectrum = np.abs(np.fft.rfft(pcm[1000:17000].astype(float)))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 2


def test_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(AudioTooLong):
        decode_to_pcm16k(wav_bytes(tone(3.0, 16000), 16000), max_seconds=2.0)


@pytest.mark.parametrize("data", [b"", b"RIFF" + b"\0" * 40, b"not audio at all" * 50, bytes(range(256)) * 20])
def test_bytes_that_are_not_audio_are_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableAudio):
        decode_to_pcm16k(data, max_seconds=60)
