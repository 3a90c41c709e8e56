"""The demo client against a small protocol-v1 fake gateway (a boundary fake).

The fake sends messages built with :mod:`speech_client`'s models, as the real gateway does.

The tests are about the client's bookkeeping: pacing, the config/end/done exchange,
matching finals to the manifest, errors, exit code and JSON output. The fake segments
audio by energy with a short silence threshold, like the real gateway but without models.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from demos import demo_client
from demos.audio_tools import Layout, assemble, wav_bytes
from demos.manifest import MANIFEST_NAME, Clip, Manifest, Utterance
from demos.session import wait_for_gateway
from speech_client.protocol import ServerMessage
from tests.speech_messages import done, error, final, ready, realtime, translation

RATE = 16000
TEXTS = ("hello there", "general kenobi")
FAKE_THRESHOLD = 0.25


@dataclass
class FakeGateway:
    """Behaviour switches and what the fake saw."""

    drop_final: int | None = None  # index of an utterance whose final is never sent
    error_code: str | None = None  # sent once per session after `ready`
    send_done: bool = True
    require_token: str | None = None  # close with 1008 unless this bearer token is sent
    authorization: list[str | None] = field(default_factory=list)
    configs: list[dict[str, object]] = field(default_factory=list)
    sessions: int = 0

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.authorization.append(ws.request.headers.get("Authorization"))
        self.sessions += 1
        if self.require_token and self.authorization[-1] != f"Bearer {self.require_token}":
            await ws.close(1008, "unauthorized")
            return
        worker = f"stt-{self.sessions % 2}"
        seq = 0

        async def send(message: ServerMessage) -> None:
            nonlocal seq
            seq += 1
            await ws.send(message.model_copy(update={"seq": seq}).to_json())

        samples = 0
        speech_start: float | None = None
        last_loud = 0.0
        segment = 0
        target: object = None

        async def finish(end: float) -> None:
            nonlocal speech_start, segment
            assert speech_start is not None
            if segment != self.drop_final:
                text = TEXTS[segment % len(TEXTS)]
                await send(final(segment, text, language="en", start=speech_start, end=end, worker=worker))
                if target:
                    await send(translation(segment, text.upper(), source_language="en",
                                           target_language=str(target), worker="mt-0"))
            segment += 1
            speech_start = None

        await send(ready(f"s{self.sessions}", sample_rate=RATE, silence_threshold_seconds=FAKE_THRESHOLD))
        if self.error_code:
            await send(error(self.error_code))
        async for raw in ws:
            if isinstance(raw, str):
                message = json.loads(raw)
                if message["type"] == "config":
                    self.configs.append(message)
                    target = message.get("target_language")
                elif message["type"] == "end":
                    if speech_start is not None:
                        await finish(last_loud)
                    if self.send_done:
                        await send(done())
                        await ws.close(1000)
                    return
                continue
            chunk = np.frombuffer(raw, dtype="<i2")
            samples += chunk.size
            now = samples / RATE
            if np.abs(chunk).max() > 1000:
                if speech_start is None:
                    speech_start = (samples - chunk.size) / RATE
                    await send(realtime(segment, "hel", language="en"))
                last_loud = now
            elif speech_start is not None and now - last_loud >= FAKE_THRESHOLD:
                await finish(last_loud)


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """A clip of two tone bursts with a manifest, made in place of TTS speech."""
    t = np.arange(int(0.4 * RATE)) / RATE
    tone = (0.5 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    assembled = assemble([tone, tone], RATE, Layout(lead=0.2, gap=0.6, tail=0.5))
    (tmp_path / "en.wav").write_bytes(wav_bytes(assembled.audio, RATE))
    clip = Clip(
        name="en", file="en.wav", language="en", sample_rate=RATE,
        duration=assembled.audio.size / RATE,
        utterances=tuple(Utterance(text, s, e)
                         for text, (s, e) in zip(TEXTS, assembled.spans, strict=True)),
    )
    (tmp_path / MANIFEST_NAME).write_text(Manifest({"en": clip}).to_json())
    return tmp_path


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGateway, str]]:
    gateway = FakeGateway()
    server: Server = await serve(gateway.handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield gateway, f"ws://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _main(argv: list[str]) -> int:
    # main() calls asyncio.run, which cannot nest inside the test's running loop.
    return await asyncio.to_thread(demo_client.main, argv)


async def test_two_clients_all_succeed(
    fake: tuple[FakeGateway, str], audio_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway, url = fake
    out = tmp_path / "report.json"
    code = await _main(["--url", url, "--clients", "2", "--speed", "4", "--audio-dir",
                        str(audio_dir), "--json", str(out), "--token", "s3cret-token",
                        "--source-language", "en", "--target-language", "de",
                        "--no-progress", "--show-transcripts"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["success_rate"] == 1.0
    assert doc["sessions"] == 2
    assert doc["wer"] == 0.0
    assert doc["worker_distribution"] == {"stt-0": 2, "stt-1": 2}
    assert doc["translation_worker_distribution"] == {"mt-0": 4}
    assert doc["errors"] == {}
    final = doc["latency"]["final"]
    assert final["count"] == 4
    # The fake answers as soon as FAKE_THRESHOLD of audio (wall: /4) has passed.
    assert final["p50"] >= FAKE_THRESHOLD / 4 - 0.03
    assert doc["latency"]["first_partial_after_speech_onset"]["count"] == 4
    assert doc["latency"]["translation_after_final"]["count"] == 4
    assert doc["throughput"]["finals"] == 4
    assert doc["throughput"]["audio_seconds"] == pytest.approx(2 * 2.1, abs=0.05)
    assert gateway.authorization == ["Bearer s3cret-token"] * 2
    assert gateway.configs[0]["source_language"] == "en"
    assert gateway.configs[0]["target_language"] == "de"
    printed = capsys.readouterr()
    assert "s3cret-token" not in printed.out + printed.err + out.read_text()
    assert "end of speech -> final" in printed.out
    assert "[client 1] general kenobi  (stt-" in printed.out  # --show-transcripts
    assert "-> de: HELLO THERE" in printed.out


async def test_missing_final_fails_session_and_exits_nonzero(
    fake: tuple[FakeGateway, str], audio_dir: Path, tmp_path: Path
) -> None:
    gateway, url = fake
    gateway.drop_final = 1
    gateway.error_code = "overloaded"
    out = tmp_path / "report.json"
    code = await _main(["--url", url, "--clients", "1", "--speed", "4", "--audio-dir",
                        str(audio_dir), "--json", str(out), "--no-progress"])
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["success_rate"] == 0.0
    assert doc["errors"] == {"overloaded": 1}
    assert doc["failed_sessions"][0]["utterances_without_final"] == 1
    assert doc["wer"] == pytest.approx(0.5)


async def test_load_test_runs_batches_and_times_out_without_done(
    fake: tuple[FakeGateway, str], audio_dir: Path, tmp_path: Path
) -> None:
    gateway, url = fake
    gateway.send_done = False
    out = tmp_path / "report.json"
    code = await _main(["--url", url, "--load-test", "--clients", "2", "--batches", "2",
                        "--speed", "8", "--audio-dir", str(audio_dir), "--json", str(out),
                        "--timeout", "0.5", "--no-progress"])
    assert code == 1
    doc = json.loads(out.read_text())
    assert gateway.sessions == 4
    assert doc["sessions"] == 4
    assert doc["config"]["batches"] == 2
    # Every final arrived, but without `done` no session counts as a success.
    assert doc["throughput"]["finals"] == 8
    assert doc["success_rate"] == 0.0
    assert set(doc["errors"]) <= {"done_timeout", "closed_before_done"}


async def test_wait_for_gateway(fake: tuple[FakeGateway, str]) -> None:
    _, url = fake
    assert await wait_for_gateway(url, timeout=1.0)
    # Port 1 on loopback is refused at once, so this fails after the timeout.
    assert not await wait_for_gateway("ws://127.0.0.1:1", timeout=0.3, interval=0.1)


async def test_refused_token_is_reported_by_close_code(
    fake: tuple[FakeGateway, str], audio_dir: Path, tmp_path: Path
) -> None:
    gateway, url = fake
    gateway.require_token = "right"
    out = tmp_path / "report.json"
    code = await _main(["--url", url, "--token", "wrong", "--audio-dir", str(audio_dir),
                        "--json", str(out), "--no-progress"])
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["errors"] == {"closed_1008": 1}
    assert doc["config"]["authenticated"] is True
    assert "wrong" not in out.read_text()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_missing_clips_in_default_dir_are_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_client, "DEFAULT_AUDIO_DIR", tmp_path)
    [loaded] = demo_client.load_clips(tmp_path, ("es",))
    assert loaded.clip.language == "es"
    assert loaded.sample_rate == 16000
    assert len(loaded.pcm) == round(loaded.clip.duration * 16000) * 2
    with pytest.raises(KeyError):
        demo_client.load_clips(tmp_path, ("xx",))
