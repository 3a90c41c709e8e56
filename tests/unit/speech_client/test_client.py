"""SpeechClient against a real WebSocket server on 127.0.0.1 (a boundary fake that sends the
package's own models): token header, resume across connections, replays dropped, bad frames
skipped, close codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from speech_client import ClientSession, Config, End, Final, Ready
from speech_client.client import SpeechClient
from tests.speech_messages import done, final, ready


class FakeGateway:
    """Connection 1: ready, finals 1 and 2, then a crash (1011). Connection 2: ready of the
    same session, a replay of final 2, something that is not JSON, final 3, done."""

    def __init__(self) -> None:
        self.received: list[list[Any]] = []
        self.headers: list[str | None] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers.append(ws.request.headers.get("Authorization"))
        got: list[Any] = []
        self.received.append(got)
        first = json.loads(await ws.recv())
        got.append(first)
        if len(self.received) == 1:
            await ws.send(ready("s-9", resume_secret="r-secret").to_json())
            await ws.send(final(0, "one", seq=1).to_json())
            await ws.send(final(1, "two", seq=2).to_json())
            await ws.close(1011, "crash")
            return
        await ws.send(ready("s-9", last_seq=first.get("last_seq", 0)).to_json())
        await ws.send(final(1, "two", seq=2).to_json())  # replayed: the client has it
        await ws.send("this is not JSON")
        await ws.send(final(2, "three", seq=3).to_json())
        async for raw in ws:
            got.append(json.loads(raw) if isinstance(raw, str) else raw)
            if isinstance(raw, str) and json.loads(raw)["type"] == "end":
                await ws.send(done(seq=4).to_json())
                await ws.close(1000)
                return


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGateway, str]]:
    gateway = FakeGateway()
    async with serve(gateway.handler, "127.0.0.1", 0) as server:
        yield gateway, f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"


async def test_resume_drops_replays_and_skips_bad_frames(fake: tuple[FakeGateway, str]) -> None:
    gateway, url = fake
    session = ClientSession()
    texts: list[str] = []
    async with await SpeechClient.connect(url, token="tok.en.x", session=session) as client:
        sent = await client.resume(sample_rate=16000, target_language=None)
        assert sent == Config(sample_rate=16000, target_language=None)
        texts += [m.text async for m in client.messages() if isinstance(m, Final)]
        assert client.close_code == 1011 and not client.closed_for_good
    assert session.resume_fields() == {"session_id": "s-9", "last_seq": 2, "resume_secret": "r-secret"}

    async with await SpeechClient.connect(url, token="tok.en.x", session=session) as client:
        await client.resume(sample_rate=16000)
        await client.send_audio(b"\x00\x00" * 160)
        await client.send(End())
        kinds = []
        async for message in client.messages():
            kinds.append(message.type)
            if isinstance(message, Final):
                texts.append(message.text)
        assert client.bad_frames == 1 and client.close_code == 1000
    assert texts == ["one", "two", "three"]  # "two" came twice; the replay was dropped
    assert kinds == ["ready", "final", "done"]
    assert session.duplicates == 1 and isinstance(session.ready, Ready)
    assert gateway.headers == ["Bearer tok.en.x"] * 2
    assert gateway.received[1][0] == {
        "type": "config", "sample_rate": 16000, "session_id": "s-9", "last_seq": 2, "resume_secret": "r-secret",
    }
    assert gateway.received[1][1] == b"\x00\x00" * 160 and gateway.received[1][2] == {"type": "end"}


async def test_a_policy_close_is_for_good() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(1008, "token_missing")

    async with serve(refuse, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
        async with await SpeechClient.connect(url) as client:
            assert [m async for m in client.messages()] == []
            assert client.close_code == 1008 and client.close_reason == "token_missing"
            assert client.closed_for_good
