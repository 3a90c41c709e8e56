"""Pure audio helpers for the clip generator and the client: trim, resample, assemble, WAV I/O.

Everything works on float32 mono arrays in [-1, 1] except the WAV functions, which read
and write 16-bit PCM (the wire format of the client protocol).
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

FloatArray = npt.NDArray[np.float32]

# Peak level every utterance is scaled to, so Piper and espeak-ng clips sound alike
# and no sample clips when converted to int16.
TARGET_PEAK = 0.7


def trim_silence(audio: FloatArray, threshold: float = 0.02) -> FloatArray:
    """Cut leading and trailing samples quieter than ``threshold`` times the peak.

    TTS engines pad their output with silence; trimming it makes the utterance times in
    the manifest the times speech really starts and stops.
    """
    if audio.size == 0:
        return audio
    peak = float(np.max(np.abs(audio)))
    if peak == 0.0:
        return audio[:0]
    loud = np.flatnonzero(np.abs(audio) >= threshold * peak)
    return audio[int(loud[0]) : int(loud[-1]) + 1]


def normalise_peak(audio: FloatArray, peak: float = TARGET_PEAK) -> FloatArray:
    """Scale so the loudest sample is ``peak``."""
    current = float(np.max(np.abs(audio))) if audio.size else 0.0
    if current == 0.0:
        return audio
    return (audio * (peak / current)).astype(np.float32)


def resample(audio: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """High-quality, deterministic sample-rate conversion (soxr)."""
    if from_rate == to_rate:
        return audio.astype(np.float32)
    out = soxr.resample(audio.astype(np.float32), from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Layout:
    """Silence placed around and between utterances, in seconds."""

    lead: float = 0.5
    gap: float = 3.0
    tail: float = 3.0


@dataclass(frozen=True)
class Assembled:
    """A clip's samples and each utterance's (start, end) in seconds."""

    audio: FloatArray
    spans: tuple[tuple[float, float], ...]


def assemble(utterances: list[FloatArray], sample_rate: int, layout: Layout) -> Assembled:
    """Concatenate utterances with digital silence; spans are exact sample offsets."""
    lead = np.zeros(round(layout.lead * sample_rate), dtype=np.float32)
    gap = np.zeros(round(layout.gap * sample_rate), dtype=np.float32)
    tail = np.zeros(round(layout.tail * sample_rate), dtype=np.float32)
    parts: list[FloatArray] = [lead]
    spans: list[tuple[float, float]] = []
    cursor = lead.size
    for index, utt in enumerate(utterances):
        if index:
            parts.append(gap)
            cursor += gap.size
        spans.append((cursor / sample_rate, (cursor + utt.size) / sample_rate))
        parts.append(utt.astype(np.float32))
        cursor += utt.size
    parts.append(tail)
    return Assembled(audio=np.concatenate(parts), spans=tuple(spans))


def to_int16(audio: FloatArray) -> npt.NDArray[np.int16]:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def wav_bytes(audio: FloatArray, sample_rate: int) -> bytes:
    """Encode mono 16-bit PCM WAV; same samples give the same bytes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(to_int16(audio).astype("<i2").tobytes())
    return buf.getvalue()


def read_wav_pcm16(data: bytes) -> tuple[bytes, int]:
    """Return (little-endian int16 mono PCM, sample rate) from WAV bytes.

    Multi-channel input is mixed down, so a user's own WAV works with the client too.
    """
    with wave.open(io.BytesIO(data), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV is supported")
        rate = wav.getframerate()
        channels = wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype("<i2")
    return samples.astype("<i2").tobytes(), rate
