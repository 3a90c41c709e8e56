"""After a dropped connection the client reconnects and resumes its session on the real gateway.

A TCP proxy between the client and the local stack cuts every connection once the first
final has arrived; the client must come back with ``config`` {session_id, last_seq}, keep the
same session, and still get the second utterance, with no result twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import wave
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest

from client_gui.audio_sources import WavFileSource
from client_gui.stream_client import ClientOptions, ConnectionState, StreamClient
from speech_client.protocol import Final, Ready, ServerMessage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "stt"
CLIPS = ["en_weather", "en_coffee"]


class DroppingProxy:
    """Forwards TCP to the gateway; :meth:`drop` aborts every open connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def drop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def two_utterances(path: Path) -> Path:
    """Both clips with silence between and after, as one 16 kHz file."""
    parts = []
    for clip in CLIPS:
        with wave.open(str(FIXTURES / f"{clip}.wav"), "rb") as wav:
            assert wav.getframerate() == 16000 and wav.getnchannels() == 1
            parts.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"))
        parts.append(np.zeros(int(3.0 * 16000), dtype="<i2"))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.concatenate(parts).tobytes())
    return path


class Listener:
    def __init__(self, on_final: Any) -> None:
        self.messages: list[ServerMessage] = []
        self.states: list[ConnectionState] = []
        self.errors: list[str] = []
        self._on_final = on_final

    def on_state(self, state: ConnectionState, detail: str) -> None:
        self.states.append(state)

    def on_message(self, message: ServerMessage) -> None:
        self.messages.append(message)
        if isinstance(message, Final):
            self._on_final()

    def on_error(self, text: str) -> None:
        self.errors.append(text)


@pytest.mark.skipif(not all((FIXTURES / f"{c}.wav").exists() for c in CLIPS), reason="no STT fixtures")
async def test_reconnect_resumes_the_session(local_stack: Any, tmp_path: Path) -> None:
    target = urlparse(local_stack.ws_url)
    proxy = DroppingProxy(target.hostname or "127.0.0.1", target.port or 5026)
    url = await proxy.start()
    dropped = asyncio.Event()

    def first_final() -> None:
        if not dropped.is_set():
            dropped.set()
            proxy.drop()

    listener = Listener(first_final)
    source = WavFileSource(two_utterances(tmp_path / "two.wav"), speed=1.0)
    client = StreamClient(ClientOptions(url=url, source_language="en"), source, listener)
    try:
        await asyncio.wait_for(client.run(), timeout=120)
    finally:
        await proxy.close()

    assert dropped.is_set() and proxy.connections == 2
    assert ConnectionState.RECONNECTING in listener.states
    # The gateway greets every connection with a fresh session, then confirms the resumed one.
    sessions = [m.session_id for m in listener.messages if isinstance(m, Ready)]
    assert sessions[-1] == sessions[0] == client.session_id, sessions
    finals = [m for m in listener.messages if isinstance(m, Final)]
    seqs = [m.seq for m in listener.messages if m.seq is not None]
    assert len(seqs) == len(set(seqs)), "a result came twice"
    text = " ".join(f.text.lower() for f in finals)
    assert "weather" in text and "coffee" in text, json.dumps([f.text for f in finals])
    assert not [e for e in listener.errors if e.startswith("unknown_session")]
