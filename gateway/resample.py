"""Streaming resampling of client audio to the pipeline's 16 kHz.

Clients may send any rate from 8 to 48 kHz; everything downstream (VAD, Whisper) works at
16 kHz. soxr's streaming resampler keeps filter state between chunks, so chunk boundaries
leave no clicks and the output is the same as resampling the whole stream at once.
"""

from __future__ import annotations

import numpy as np
import soxr

TARGET_RATE = 16000
MIN_RATE = 8000
MAX_RATE = 48000


class UnsupportedSampleRate(ValueError):
    """A client sample rate outside the supported 8-48 kHz range."""

    def __init__(self, rate: object) -> None:
        super().__init__(
            f"unsupported sample rate {rate!r}: expected an integer from {MIN_RATE} to {MAX_RATE} Hz"
        )
        self.rate = rate


def check_sample_rate(rate: object) -> int:
    """Return ``rate`` as an int if it is a supported input rate, else raise UnsupportedSampleRate."""
    # bool is an int subclass; True must not pass as 1 Hz (it would fail anyway, but say why).
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise UnsupportedSampleRate(rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedSampleRate(rate)
    return rate


class Resampler:
    """int16 mono PCM at ``in_rate`` -> int16 mono PCM at 16 kHz, chunk by chunk.

    At 16 kHz input it is a pass-through (no filter, no delay).
    """

    def __init__(self, in_rate: int, out_rate: int = TARGET_RATE, quality: str = "HQ") -> None:
        self.in_rate = check_sample_rate(in_rate)
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if self.in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                self.in_rate, out_rate, 1, dtype="int16", quality=quality
            )

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    def process(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one chunk; ``last=True`` drains the filter (no more input may follow)."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        if self._stream is None:
            return pcm
        out = self._stream.resample_chunk(pcm, last=last)
        return np.asarray(out, dtype=np.int16).reshape(-1)
