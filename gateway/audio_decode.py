"""Any common audio container (WAV, FLAC, MP3, OGG/Opus, M4A...) to 16 kHz mono int16 PCM.

Decoding and resampling are FFmpeg's, through PyAV: a maintained library instead of a parser
of our own for each format. The duration limit is enforced while decoding, so a file that
claims to be short but is not stops costing CPU as soon as it passes the limit.
"""

from __future__ import annotations

import io

import numpy as np

TARGET_RATE = 16000


class UnreadableAudio(ValueError):
    """The bytes are not audio PyAV can decode; the message says what it found."""


class AudioTooLong(ValueError):
    """The audio is longer than the limit."""


def decode_to_pcm16k(data: bytes, max_seconds: float) -> np.ndarray:
    """The first audio stream of ``data`` as int16 mono at 16 kHz."""
    import av  # imported here: only the upload path needs FFmpeg

    max_samples = int(max_seconds * TARGET_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise UnreadableAudio("the file has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=TARGET_RATE)
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    total += len(pcm)
                    if total > max_samples:
                        raise AudioTooLong(f"the audio is longer than {max_seconds:.0f} s")
                    chunks.append(pcm)
            for out in resampler.resample(None):  # the resampler's buffered tail
                chunks.append(out.to_ndarray().reshape(-1))
    except (AudioTooLong, UnreadableAudio):
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise UnreadableAudio(f"could not decode the file as audio ({type(exc).__name__})") from None
    if not chunks:
        raise UnreadableAudio("the file holds no audio samples")
    return np.concatenate(chunks).astype(np.int16, copy=False)
