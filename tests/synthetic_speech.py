"""Synthetic speech for VAD-driven tests: voiced sounds both VADs take for speech, in faint noise.

No model and no fixture file: the segmenter tests and the session tests that need real pauses
(streaming commits through ``SessionCore.feed``) build their audio from these, and answer
partials with :func:`timed_words`.
"""

from __future__ import annotations

import numpy as np

from common import bus

SR = 16000


def vowel(seconds: float, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A voiced, formant-shaped, syllable-modulated sound that both VADs take for speech.

    Pitch wanders and formants glide, as in speech: a strictly periodic tone gets Silero
    probabilities that depend on how its 32 ms windows happen to align.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    walk = np.convolve(rng.standard_normal(len(t)), np.ones(800) / 800, mode="same")
    walk /= np.abs(walk).max() + 1e-9
    f0t = f0 * (1 + 0.06 * walk + 0.04 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0t) / SR
    glide = 0.5 + 0.5 * np.sin(2 * np.pi * 0.9 * t)
    formants = ((700 - 200 * glide, 130), (1220 + 600 * glide, 90), (2600, 160))
    x = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        fk = k * f0t
        amp = 0.05 + sum(np.exp(-(((fk - f) / b) ** 2) / 2) for f, b in formants)
        x += amp / k * np.sin(k * phase)  # -6 dB/octave, like a voice
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return x / np.abs(x).max() * 0.4


def compose(parts: list[tuple[float, np.ndarray | None]], seed: int = 0) -> np.ndarray:
    """``(silence_before, clip)`` pairs in faint noise, as int16; a None clip is silence only."""
    chunks: list[np.ndarray] = []
    for gap, clip in parts:
        chunks.append(np.zeros(round(gap * SR)))
        if clip is not None:
            chunks.append(clip)
    x = np.concatenate(chunks)
    x = x + np.random.default_rng(seed).standard_normal(len(x)) * 10 ** (-55 / 20)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def timed_words(job: bus.AudioJob, step: float, length: float, agree: bool = True) -> list[bus.Word]:
    """A worker's words for ``job``'s audio: one every ``step`` s, ``length`` s long, named by
    their time (successive hypotheses agree) or, with ``agree`` False, by the partial's seq
    (they never do)."""
    start = job.audio_start if job.audio_start is not None else job.start
    out, t = [], float(np.ceil(start / step) * step)
    while t + length <= job.end:
        name = round(t / step) if agree else f"{job.partial_seq}x{round(t / step)}"
        out.append(bus.Word(word=f" w{name}", start=t, end=t + length, probability=0.9))
        t += step
    return out
