"""End to end: ``speech-pipeline up`` as processes, a real WebSocket client, real models.

The client streams a committed WAV (piper speech with known text) at real-time pace, sends
``end`` and reads until ``done``. The finals must match the reference (WER <= 0.2).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import wave
from pathlib import Path

import jiwer
import numpy as np
import pytest
from websockets.asyncio.client import connect

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gateway" / "speech_piper"
CHUNK_SECONDS = 0.032


def normalise(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()


async def stream_file(url: str, speed: float = 1.0, config: dict | None = None) -> tuple[list[dict], float]:
    pcm, rate = read_wav(FIXTURE.with_suffix(".wav"))
    step = int(rate * CHUNK_SECONDS)
    messages: list[dict] = []
    async with connect(url, max_size=2**20) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["protocol"] == 1
        if config:
            await ws.send(json.dumps({"type": "config", **config}))

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                msg["_at"] = time.monotonic()
                messages.append(msg)
                if msg["type"] == "done":
                    return

        read = asyncio.create_task(reader())
        started = time.monotonic()
        for i in range(0, len(pcm), step):
            await ws.send(pcm[i : i + step].tobytes())
            delay = started + (i + step) / rate / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(read, 60)
    return messages, started


def test_stack_is_healthy_and_serves_metrics(local_stack) -> None:
    for base in (local_stack.gateway_health, local_stack.stt_health, local_stack.translation_health):
        with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
            assert r.status == 200
            assert json.load(r)["status"] in ("ok", "degraded")
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            assert "# HELP" in r.read().decode()
    for base in (local_stack.gateway_health, local_stack.stt_health):
        with urllib.request.urlopen(f"{base}/ready", timeout=2) as r:
            assert r.status == 200


@pytest.mark.model_output
def test_wav_file_transcribed_end_to_end(local_stack, record_margin) -> None:
    reference = json.loads(FIXTURE.with_suffix(".json").read_text())
    messages, started = asyncio.run(stream_file(local_stack.ws_url))
    types = [m["type"] for m in messages]
    assert types[-1] == "done"
    finals = [m for m in messages if m["type"] == "final"]
    assert finals, types
    hypothesis = normalise(" ".join(m["text"] for m in finals))
    truth = normalise(" ".join(u["text"] for u in reference["speech"]))
    wer = jiwer.wer(truth, hypothesis)
    print("hypothesis:", hypothesis)
    record_margin("WER", wer, 0.2)
    seqs = [m["seq"] for m in messages if "seq" in m]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [m["segment_id"] for m in finals] == sorted({m["segment_id"] for m in finals},
                                                       key=lambda s: int(s.rsplit(":", 1)[1]))
    # Latency, printed for the closing note: end of speech (by the stream clock) to final.
    last_end = reference["speech"][-1]["end"]
    print(f"\nlast final {finals[-1]['_at'] - started - last_end:.2f}s after the end of speech")


def test_each_final_is_followed_by_its_translation(local_stack) -> None:
    # The stack's translation worker runs a tiny random-weight NLLB model: real loading,
    # tokenizing, language tokens and translate_batch; its output words are meaningless.
    messages, _ = asyncio.run(
        stream_file(local_stack.ws_url, speed=2.0, config={"source_language": "en", "target_language": "es"})
    )
    finals = [m for m in messages if m["type"] == "final" and m["text"].strip()]
    translations = [m for m in messages if m["type"] == "translation"]
    assert finals and [t["segment_id"] for t in translations] == [f["segment_id"] for f in finals]
    for t in translations:
        assert (t["source_language"], t["target_language"]) == ("en", "es")
    order = [(m["type"], m["segment_id"]) for m in messages if m["type"] in ("final", "translation")]
    for f in finals:  # each translation right after its own final
        i = order.index(("final", f["segment_id"]))
        assert order[i + 1] == ("translation", f["segment_id"])
