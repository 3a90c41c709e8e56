"""The asyncio client against a real local WebSocket server: config, audio, resume, token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client_gui.audio_sources import WavFileSource
from client_gui.stream_client import ClientOptions, ConnectionState, StreamClient
from speech_client.protocol import Done, Final, ServerMessage, Translation


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[ConnectionState, str]] = []
        self.messages: list[ServerMessage] = []
        self.errors: list[str] = []

    def on_state(self, state: ConnectionState, detail: str) -> None:
        self.states.append((state, detail))

    def on_message(self, message: ServerMessage) -> None:
        self.messages.append(message)

    def on_error(self, text: str) -> None:
        self.errors.append(text)


async def test_streams_file_and_receives_results(recording_gateway: Any, make_wav: Callable[..., Path]) -> None:
    source = WavFileSource(make_wav(seconds=0.5, rate=22050), speed=0)
    recorder = Recorder()
    options = ClientOptions(url=recording_gateway.url, source_language="en", target_language="es")
    await StreamClient(options, source, recorder).run()

    first = recording_gateway.configs()[0]
    assert first == {"type": "config", "sample_rate": 22050, "source_language": "en",
                     "target_language": "es", "partials": True}
    assert recording_gateway.connections[0][0] == first  # config comes before any audio
    assert recording_gateway.audio_bytes() == int(0.5 * 22050) * 2
    assert recording_gateway.connections[0][-1] == {"type": "end"}
    kinds = [type(m) for m in recorder.messages]
    assert kinds[-3:] == [Final, Translation, Done]
    assert recorder.states[-1][0] is ConnectionState.STOPPED
    assert recorder.errors == []


async def test_reconnects_and_resumes_with_session_and_last_seq(
    make_wav: Callable[..., Path], gateway_factory: Any
) -> None:
    with gateway_factory(drop_first_connection_after=1) as gateway:
        source = WavFileSource(make_wav(seconds=1.5), speed=2.0)
        recorder = Recorder()
        await StreamClient(ClientOptions(url=gateway.url), source, recorder).run()

    assert len(gateway.connections) == 2
    resumed = gateway.configs(1)[0]
    assert resumed["session_id"] == "sess-1"
    assert resumed["last_seq"] == 1
    finals = [m.text for m in recorder.messages if isinstance(m, Final)]
    assert finals == ["Before the drop.", "Hello world."]  # the replayed final is dropped
    assert any(state is ConnectionState.RECONNECTING for state, _ in recorder.states)


async def test_token_goes_in_the_header_and_not_in_logs(
    recording_gateway: Any, make_wav: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "eyJ.secret-token.sig"
    options = ClientOptions(url=recording_gateway.url, token=secret)
    await StreamClient(options, WavFileSource(make_wav(seconds=0.2), speed=0), Recorder()).run()
    assert recording_gateway.headers[0]["authorization"] == f"Bearer {secret}"
    client_records = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    assert any(r.name == "speech_client.client.websocket" for r in client_records)
    assert not [r for r in client_records if secret in r.getMessage()]
    assert secret not in repr(options)


async def test_refused_token_stops_without_retrying(
    make_wav: Callable[..., Path], gateway_factory: Any
) -> None:
    with gateway_factory(reject_status=401) as gateway:
        recorder = Recorder()
        options = ClientOptions(url=gateway.url, token="bad")
        await StreamClient(options, WavFileSource(make_wav(seconds=2.0), speed=1.0), recorder).run()
    assert len(gateway.headers) == 1
    assert recorder.errors == ["The gateway refused the connection (HTTP 401: check the token)"]


async def test_language_change_is_sent_on_the_open_socket(
    recording_gateway: Any, make_wav: Callable[..., Path]
) -> None:
    recorder = Recorder()
    client = StreamClient(ClientOptions(url=recording_gateway.url), WavFileSource(make_wav(seconds=1.0)), recorder)
    task = asyncio.create_task(client.run())
    for _ in range(500):  # the client reports state through callbacks, not an awaitable
        if any(state is ConnectionState.CONNECTED for state, _ in recorder.states):
            break
        await asyncio.sleep(0.02)
    await client.update_config(source_language="fr", target_language="de")
    await task
    assert len(recording_gateway.connections) == 1
    assert {"type": "config", "source_language": "fr", "target_language": "de"} in recording_gateway.configs()
    translations = [m for m in recorder.messages if isinstance(m, Translation)]
    assert translations[0].target_language == "de"
