"""Client GUI unit tests: Qt runs offscreen; a fixture writes small WAV files."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import serve

from speech_client.protocol import ServerMessage
from tests.speech_messages import done, final, ready, translation

# Before any QApplication exists (pytest-qt creates it lazily, after collection).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    frames = np.repeat(tone[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames.tobytes())
    return path


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "tone.wav", **kwargs: float) -> Path:
        return write_wav(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


class RecordingGateway:
    """A real WebSocket server on 127.0.0.1 that records what clients send (a boundary fake).

    It runs in its own thread and event loop, so Qt tests (whose client runs in a QThread)
    and asyncio tests can both use it. What it sends is built with :mod:`speech_client`'s
    models (through :mod:`tests.speech_messages`). By default it behaves like a tiny gateway: ``ready``
    on connect, then on ``end`` one final and its translation, then ``done``. Tests change
    that with ``drop_first_connection_after``, ``reject_status`` and ``ignore_end``.
    """

    def __init__(
        self,
        drop_first_connection_after: int | None = None,
        reject_status: int | None = None,
        ignore_end: bool = False,
    ):
        self.drop_first_connection_after = drop_first_connection_after
        self.ignore_end = ignore_end
        self.reject_status = reject_status
        self.connections: list[list[object]] = []  # per connection: text (parsed) or bytes
        self.headers: list[dict[str, str]] = []  # lower-case names
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> RecordingGateway:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        assert self._thread is not None
        self._thread.join(10)

    def _received(self, connection: int) -> list[object]:
        # The server thread may not have seen the connection yet: nothing received then.
        return list(self.connections[connection]) if connection < len(self.connections) else []

    def configs(self, connection: int = 0) -> list[dict[str, object]]:
        return [m for m in self._received(connection) if isinstance(m, dict) and m["type"] == "config"]

    def audio_bytes(self, connection: int = 0) -> int:
        return sum(len(m) for m in self._received(connection) if isinstance(m, bytes))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(connection: Any, request: Any) -> Any:
            self.headers.append({k.lower(): v for k, v in request.headers.raw_items()})
            if self.reject_status is not None:
                return connection.respond(self.reject_status, "refused\n")
            return None

        async with serve(self._handler, "127.0.0.1", 0, process_request=process_request) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/"
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws: Any) -> None:
        index = len(self.connections)
        received: list[object] = []
        self.connections.append(received)
        seq = 0 if index == 0 else 100  # a resumed session goes on counting

        async def send(message: ServerMessage) -> None:
            nonlocal seq
            seq += 1
            await ws.send(message.model_copy(update={"seq": seq}).to_json())

        results = 0
        async for raw in ws:
            received.append(json.loads(raw) if isinstance(raw, str) else raw)
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message["type"] == "config" and len(self.configs(index)) == 1:
                await ws.send(ready("sess-1").to_json())
                if index == 0 and self.drop_first_connection_after is not None:
                    await send(final(1, "Before the drop.", language="en"))
                    await ws.close(1011, "simulated crash")
                    return
                if index == 1:
                    # Replay what the client already had, as a gateway may after a resume.
                    await ws.send(final(1, "Before the drop.", seq=1).to_json())
            if message["type"] == "end" and not self.ignore_end:
                results += 1
                await send(final(10 + results, "Hello world.", language="en"))
                target = next((c.get("target_language") for c in reversed(self.configs(index))
                               if "target_language" in c), None)
                if target:
                    await send(translation(10 + results, "Hola mundo.", source_language="en",
                                           target_language=str(target)))
                await send(done())
                await ws.close(1000)
                return


@pytest.fixture
def recording_gateway() -> Iterator[RecordingGateway]:
    with RecordingGateway() as server:
        yield server


@pytest.fixture
def gateway_factory() -> type[RecordingGateway]:
    """For tests that need a gateway behaving differently: ``with gateway_factory(...) as gw``."""
    return RecordingGateway
