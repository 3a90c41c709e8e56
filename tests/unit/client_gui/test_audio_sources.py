"""Audio sources: the WAV file source, device listing, and a missing PortAudio."""

from __future__ import annotations

import builtins
import os
import sys
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from client_gui import audio_sources
from client_gui.audio_sources import (
    AudioSourceError,
    PortAudioUnavailable,
    WavFileSource,
    is_loopback_name,
    list_input_devices,
    load_sounddevice,
    parse_pactl_monitors,
    to_mono_s16le,
)


async def test_wav_source_downmixes_and_keeps_every_sample(make_wav: Callable[..., Path]) -> None:
    path = make_wav("stereo.wav", seconds=0.35, rate=8000, channels=2)
    source = WavFileSource(path, speed=0)
    assert source.sample_rate == 8000
    chunks = [chunk async for chunk in source.chunks()]
    assert len(chunks) == 4  # 100 ms chunks: 3 full and the rest
    mono = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert mono.shape == (2800,)
    assert np.abs(mono).max() > 9000


async def test_wav_source_is_paced_in_real_time(make_wav: Callable[..., Path]) -> None:
    source = WavFileSource(make_wav(seconds=0.5), speed=1.0)
    started = time.monotonic()
    count = sum([1 async for _ in source.chunks()])
    elapsed = time.monotonic() - started
    assert count == 5
    assert elapsed >= 0.35  # the last chunk is sent without waiting after it


async def test_wav_source_stops_when_closed(make_wav: Callable[..., Path]) -> None:
    source = WavFileSource(make_wav(seconds=2.0), speed=0)
    received = 0
    async for _ in source.chunks():
        received += 1
        source.close()
    assert received == 1


def test_wav_source_rejects_8_bit_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(b"\x80" * 800)
    with pytest.raises(AudioSourceError, match="16-bit"):
        WavFileSource(path)
    (tmp_path / "junk.wav").write_bytes(b"nope")
    with pytest.raises(AudioSourceError):
        WavFileSource(tmp_path / "junk.wav")


def test_to_mono() -> None:
    stereo = np.array([[100, 300], [-100, -300]], dtype=np.int16)
    assert np.frombuffer(to_mono_s16le(stereo), dtype="<i2").tolist() == [200, -200]


@pytest.mark.parametrize(
    ("name", "loopback"),
    [
        ("Monitor of Built-in Audio Analog Stereo", True),
        ("alsa_output.pci-0000_00_1f.3.analog-stereo.monitor", True),
        ("Stereo Mix (Realtek Audio)", True),
        ("BlackHole 2ch", True),
        ("Built-in Microphone", False),
    ],
)
def test_loopback_names(name: str, loopback: bool) -> None:
    assert is_loopback_name(name) is loopback


class FakeSoundDevice:
    """The PortAudio boundary: what sounddevice reports on a PulseAudio desktop."""

    class default:
        device = (1, 0)

    @staticmethod
    def query_hostapis() -> list[dict[str, Any]]:
        return [{"name": "ALSA"}]

    @staticmethod
    def query_devices() -> list[dict[str, Any]]:
        return [
            {"name": "Speakers", "hostapi": 0, "max_input_channels": 0, "default_samplerate": 48000.0},
            {"name": "USB Mic", "hostapi": 0, "max_input_channels": 1, "default_samplerate": 44100.0},
            {"name": "Monitor of Speakers", "hostapi": 0, "max_input_channels": 2,
             "default_samplerate": 48000.0},
        ]


def test_list_input_devices_separates_microphones_and_system_audio() -> None:
    devices = list_input_devices(FakeSoundDevice)
    assert [(d.name, d.is_loopback, d.is_default) for d in devices] == [
        ("USB Mic", False, True),
        ("Monitor of Speakers", True, False),
    ]
    assert devices[1].label == "System audio: Monitor of Speakers [ALSA]"


def test_missing_portaudio_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def failing_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(PortAudioUnavailable, match="PortAudio library is missing"):
        load_sounddevice()
    with pytest.raises(PortAudioUnavailable):
        audio_sources.DeviceSource()


class FakeRawInputStream:
    """PortAudio's capture thread: calls back with stereo int16 blocks until stopped."""

    def __init__(self, *, callback: Any, channels: int, blocksize: int, **kwargs: Any) -> None:
        self.callback, self.channels, self.blocksize = callback, channels, blocksize
        self.pulse_source = os.environ.get("PULSE_SOURCE")  # what the ALSA pulse plugin would read
        self.kwargs = kwargs
        self.running = False
        self.closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.running = True

        def capture() -> None:
            block = np.tile(np.array([[1000, 3000]], dtype=np.int16), (self.blocksize, 1))
            while self.running:
                self.callback(block.tobytes(), self.blocksize, None, None)
                time.sleep(0.01)

        self._thread = threading.Thread(target=capture, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.running = False
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.closed = True


class FakeCaptureDevice(FakeSoundDevice):
    streams: ClassVar[list[FakeRawInputStream]] = []

    @staticmethod
    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        if device is None and kind is None:
            return FakeSoundDevice.query_devices()
        return {"name": "Monitor of Speakers", "max_input_channels": 2, "default_samplerate": 48000.0}

    @classmethod
    def RawInputStream(cls, **kwargs: Any) -> FakeRawInputStream:
        stream = FakeRawInputStream(**kwargs)
        cls.streams.append(stream)
        return stream


async def test_device_source_delivers_mono_chunks_from_the_capture_thread() -> None:
    source = audio_sources.DeviceSource(2, sd=FakeCaptureDevice)
    assert source.sample_rate == 48000 and source.description == "Monitor of Speakers"
    chunks = []
    async for chunk in source.chunks():
        chunks.append(chunk)
        if len(chunks) == 3:
            source.close()
    stream = FakeCaptureDevice.streams[-1]
    assert stream.channels == 2 and stream.kwargs["samplerate"] == 48000
    assert stream.kwargs["dtype"] == "int16" and stream.closed and not stream.running
    mono = np.frombuffer(chunks[0], dtype="<i2")
    assert mono.shape == (4800,) and set(mono.tolist()) == {2000}


PACTL_SHORT_SOURCES = (
    "48\talsa_output.pci-0000_00_1f.3.analog-stereo.monitor\tPipeWire\ts32le 2ch 48000Hz\tSUSPENDED\n"
    "49\talsa_input.pci-0000_00_1f.3.analog-stereo\tPipeWire\ts32le 2ch 48000Hz\tRUNNING\n"
)


def test_pulse_monitors_are_offered_through_the_pulse_device() -> None:
    assert parse_pactl_monitors(PACTL_SHORT_SOURCES) == ["alsa_output.pci-0000_00_1f.3.analog-stereo.monitor"]

    class WithPulse(FakeSoundDevice):
        @staticmethod
        def query_devices() -> list[dict[str, Any]]:
            return [*FakeSoundDevice.query_devices(),
                    {"name": "pulse", "hostapi": 0, "max_input_channels": 32, "default_samplerate": 44100.0}]

    devices = list_input_devices(WithPulse, monitors=parse_pactl_monitors(PACTL_SHORT_SOURCES))
    monitor = devices[-1]
    assert monitor.is_loopback and monitor.index == 3
    assert monitor.pulse_source == "alsa_output.pci-0000_00_1f.3.analog-stereo.monitor"
    assert monitor.label.startswith("System audio: alsa_output")


async def test_device_source_opens_a_pulse_monitor_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    source = audio_sources.DeviceSource(3, sd=FakeCaptureDevice, pulse_source="speakers.monitor")
    assert source.description == "speakers.monitor"
    async for _ in source.chunks():
        source.close()
    assert FakeCaptureDevice.streams[-1].pulse_source == "speakers.monitor"
    assert "PULSE_SOURCE" not in os.environ  # put back after opening
