"""Voice activity detectors used by the segmenter: WebRTC (fast, cheap) and Silero (ONNX).

Silero runs through onnxruntime on the ONNX file that faster-whisper ships, so the gateway
never imports torch. An ``InferenceSession`` is expensive (memory, start-up), so one is shared
per process (``SileroVad.shared()``); the recurrent state lives in a ``SileroState`` that each
segmenter owns. ``InferenceSession.run`` is thread-safe, so segmenters may run in worker threads.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import webrtcvad

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WEBRTC_FRAME_SAMPLES = 480  # 30 ms at 16 kHz
SILERO_WINDOW = 512  # 32 ms: the only window size the 16 kHz Silero model accepts
SILERO_CONTEXT = 64  # samples of the previous window the v5/v6 model expects in front
SILERO_FILE = "silero_vad_v6.onnx"


def installed_silero_copy() -> Path:
    """Where the gateway image puts its copy of the model (it has no faster-whisper)."""
    return Path(sys.prefix) / "share" / "speech-pipeline" / SILERO_FILE


def default_silero_path() -> Path:
    """The Silero VAD ONNX model: the image's copy, else the one inside faster-whisper.

    faster-whisper is found with importlib rather than imported: its import pulls in
    ctranslate2 and the whole STT stack the gateway does not need.
    """
    copy = installed_silero_copy()
    if copy.is_file():
        return copy
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"no Silero VAD model: neither {copy} nor faster-whisper (which ships it) is installed"
        )
    return Path(spec.origin).parent / "assets" / SILERO_FILE


class WebRtcVad:
    """webrtcvad on 30 ms, 16 kHz int16 frames; ``mode`` 0 (most sensitive) to 3."""

    def __init__(self, mode: int) -> None:
        if not 0 <= mode <= 3:
            raise ValueError(f"WebRTC VAD mode must be 0-3, got {mode}")
        self._vad = webrtcvad.Vad(mode)

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(self._vad.is_speech(frame.tobytes(), SAMPLE_RATE))


@dataclass
class SileroState:
    """Recurrent state of one audio stream through the shared Silero model."""

    h: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), np.float32))
    c: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(SILERO_CONTEXT, np.float32))

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(SILERO_CONTEXT, np.float32)


class SileroVad:
    """Speech probability per 512-sample window, from the Silero ONNX model."""

    _shared: SileroVad | None = None
    _shared_lock = threading.Lock()

    def __init__(self, path: str | Path | None = None) -> None:
        import onnxruntime

        model_path = Path(path) if path is not None else default_silero_path()
        opts = onnxruntime.SessionOptions()
        # One thread: the model is tiny and the CPU is better spent on many sessions in parallel.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path), providers=["CPUExecutionProvider"], sess_options=opts
        )
        log.info("silero VAD loaded from %s", model_path)

    @classmethod
    def shared(cls) -> SileroVad:
        """The process-wide instance, created on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def probabilities(self, state: SileroState, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each 512-sample window of ``audio`` (float32 in [-1, 1]).

        ``len(audio)`` must be a multiple of 512. The windows go through the model in one call;
        the model treats the rows as a sequence, so this equals feeding them one by one.
        """
        n = len(audio) // SILERO_WINDOW
        if n == 0:
            return np.zeros(0, np.float32)
        windows = audio[: n * SILERO_WINDOW].reshape(n, SILERO_WINDOW)
        contexts = np.empty((n, SILERO_CONTEXT), np.float32)
        contexts[0] = state.context
        if n > 1:
            contexts[1:] = windows[:-1, -SILERO_CONTEXT:]
        batch = np.concatenate([contexts, windows], axis=1)
        out, state.h, state.c = self._session.run(
            None, {"input": batch, "h": state.h, "c": state.c}
        )
        state.context = windows[-1, -SILERO_CONTEXT:].copy()
        return np.asarray(out, np.float32).reshape(-1)
