"""Audio sources behind one interface: a sound device, or a WAV file paced in real time.

Both yield PCM signed 16-bit little-endian mono chunks at their own ``sample_rate`` (the
gateway resamples; the client says the rate in ``config``). ``sounddevice`` is imported only
when a device is used: without the PortAudio library it raises OSError at import, which
becomes :class:`PortAudioUnavailable` with a clear message while the file source still works.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.1
# Live audio waiting for the socket is bounded; the oldest is dropped (about 30 s here).
MAX_QUEUED_CHUNKS = 300
# Device names that carry what the computer plays rather than a microphone.
_LOOPBACK_MARKERS = ("monitor of", ".monitor", "stereo mix", "loopback", "what u hear", "blackhole")


class AudioSourceError(RuntimeError):
    """An audio source that cannot be opened or read."""


class PortAudioUnavailable(AudioSourceError):
    """sounddevice is installed but the PortAudio library is not."""


class AudioSource(Protocol):
    """Mono s16le audio at ``sample_rate``, as an async stream of chunks until it ends."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def description(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


def load_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a message a person can act on."""
    try:
        import sounddevice
    except OSError as exc:
        raise PortAudioUnavailable(
            "The PortAudio library is missing, so microphones and system audio cannot be used "
            "(install it: apt-get install libportaudio2, or your system's portaudio package). "
            "A WAV file source still works."
        ) from exc
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    is_loopback: bool
    is_default: bool = False
    # A PulseAudio/PipeWire source opened through the ALSA "pulse" device (monitors).
    pulse_source: str | None = None

    @property
    def label(self) -> str:
        kind = "System audio" if self.is_loopback else "Microphone"
        default = " (default)" if self.is_default else ""
        return f"{kind}: {self.name} [{self.hostapi}]{default}"


def is_loopback_name(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _LOOPBACK_MARKERS)


def parse_pactl_monitors(output: str) -> list[str]:
    """Monitor source names from ``pactl list short sources`` (index, name, driver, ...)."""
    names = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1].endswith(".monitor"):
            names.append(fields[1])
    return names


def list_pulse_monitors() -> list[str]:
    """PulseAudio/PipeWire monitor sources (what the speakers play), if ``pactl`` is there.

    PortAudio's ALSA host API does not list them, but its "pulse" device records from
    whichever source ``PULSE_SOURCE`` names when the stream opens.
    """
    pactl = shutil.which("pactl")
    if pactl is None:
        return []
    try:
        done = subprocess.run(
            [pactl, "list", "short", "sources"], capture_output=True, text=True, timeout=3, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("no PulseAudio monitors: %s", exc)
        return []
    return parse_pactl_monitors(done.stdout)


def list_input_devices(sd: Any | None = None, monitors: list[str] | None = None) -> list[DeviceInfo]:
    """Input devices, microphones first, then monitor/loopback sources (system audio).

    ``monitors`` defaults to :func:`list_pulse_monitors`. Raises
    :class:`PortAudioUnavailable` when PortAudio is missing.
    """
    sd = sd or load_sounddevice()
    hostapis = [api["name"] for api in sd.query_hostapis()]
    try:
        default_in = int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        default_in = -1
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if int(dev["max_input_channels"]) <= 0:
            continue
        devices.append(
            DeviceInfo(
                index=index,
                name=str(dev["name"]),
                hostapi=hostapis[int(dev["hostapi"])] if hostapis else "",
                channels=int(dev["max_input_channels"]),
                default_samplerate=float(dev["default_samplerate"]),
                is_loopback=is_loopback_name(str(dev["name"])),
                is_default=index == default_in,
            )
        )
    pulse = next((d for d in devices if d.name == "pulse"), None)
    if pulse is not None:
        for name in list_pulse_monitors() if monitors is None else monitors:
            devices.append(
                DeviceInfo(
                    index=pulse.index,
                    name=name,
                    hostapi="PulseAudio",
                    channels=2,
                    default_samplerate=pulse.default_samplerate,
                    is_loopback=True,
                    pulse_source=name,
                )
            )
    return sorted(devices, key=lambda d: (d.is_loopback, not d.is_default, d.index))


def to_mono_s16le(block: np.ndarray) -> bytes:
    """Interleaved int16 frames (frames x channels) to mono int16 bytes."""
    if block.ndim == 2 and block.shape[1] > 1:
        block = block.mean(axis=1).astype(np.int16)
    return np.ascontiguousarray(block.reshape(-1), dtype="<i2").tobytes()


class DeviceSource:
    """A sound device read by PortAudio's callback thread and handed to the asyncio loop."""

    def __init__(
        self,
        device: int | None = None,
        sample_rate: int | None = None,
        sd: Any | None = None,
        pulse_source: str | None = None,
    ) -> None:
        self._sd = sd or load_sounddevice()
        info = self._sd.query_devices(device, "input")
        self._device = device
        self._pulse_source = pulse_source
        self._name = pulse_source or str(info["name"])
        if pulse_source:
            info = {**info, "max_input_channels": max(2, int(info["max_input_channels"]))}
        # Two channels at most: monitors are stereo; some ALSA devices refuse mono.
        self._channels = max(1, min(2, int(info["max_input_channels"])))
        self._rate = int(sample_rate or info["default_samplerate"])
        self._stream: Any = None
        self._closed = False

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def description(self) -> str:
        return self._name

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_QUEUED_CHUNKS)

        def put(data: bytes) -> None:
            if queue.full():
                queue.get_nowait()  # live audio: the newest matters most
            queue.put_nowait(data)

        def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
            if status:
                log.debug("audio status: %s", status)
            data = to_mono_s16le(np.frombuffer(indata, dtype=np.int16).reshape(-1, self._channels))
            loop.call_soon_threadsafe(put, data)

        previous_source = os.environ.get("PULSE_SOURCE")
        if self._pulse_source:
            # Read by the ALSA pulse plugin when the stream opens; put back right after.
            os.environ["PULSE_SOURCE"] = self._pulse_source
        try:
            self._stream = self._sd.RawInputStream(
                device=self._device,
                samplerate=self._rate,
                channels=self._channels,
                dtype="int16",
                blocksize=int(self._rate * CHUNK_SECONDS),
                callback=callback,
            )
            self._stream.start()
        except Exception as exc:  # sounddevice.PortAudioError is not importable without PortAudio
            raise AudioSourceError(f"cannot open {self._name!r}: {exc}") from exc
        finally:
            if self._pulse_source:
                if previous_source is None:
                    os.environ.pop("PULSE_SOURCE", None)
                else:
                    os.environ["PULSE_SOURCE"] = previous_source
        try:
            while not self._closed:
                try:
                    # Wake up now and then: close() comes from another task, not a callback.
                    yield await asyncio.wait_for(queue.get(), timeout=0.2)
                except asyncio.TimeoutError:
                    continue
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


class WavFileSource:
    """A 16-bit PCM WAV file at any rate, downmixed to mono and paced in real time.

    ``speed`` > 1 plays faster than real time (tests); 0 sends as fast as possible.
    """

    def __init__(self, path: str | Path, speed: float = 1.0) -> None:
        self._path = Path(path)
        try:
            with wave.open(str(self._path), "rb") as wav:
                if wav.getsampwidth() != 2 or wav.getcomptype() != "NONE":
                    raise AudioSourceError(f"{self._path}: only 16-bit PCM WAV files are supported")
                self._rate = wav.getframerate()
                self._channels = wav.getnchannels()
                self._frames = wav.getnframes()
        except (OSError, EOFError, wave.Error) as exc:
            raise AudioSourceError(f"cannot read {self._path}: {exc}") from exc
        self._speed = speed
        self._closed = False

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def description(self) -> str:
        return f"WAV file {self._path.name}"

    @property
    def duration(self) -> float:
        return self._frames / self._rate

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        frames_per_chunk = max(1, int(self._rate * CHUNK_SECONDS))
        started = loop.time()
        sent_seconds = 0.0
        with wave.open(str(self._path), "rb") as wav:
            while not self._closed:
                raw = wav.readframes(frames_per_chunk)
                if not raw:
                    return
                block = np.frombuffer(raw, dtype="<i2").reshape(-1, self._channels)
                yield to_mono_s16le(block)
                sent_seconds += block.shape[0] / self._rate
                if self._speed > 0:
                    # Pace against the start time so small sleep errors do not add up.
                    delay = started + sent_seconds / self._speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)

    def close(self) -> None:
        self._closed = True
