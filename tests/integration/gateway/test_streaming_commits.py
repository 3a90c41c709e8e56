"""Streaming commits (issue 14) on the real gateway, a real Redis and a real STT worker (tiny.en).

The clips are tests/fixtures/stream/ (made by make_fixtures.py there): one turn of continuous
speech, and sentences separated by pauses longer than the commit pause and shorter than the
seed's 2.0 s silence threshold. They are streamed in real time, since the commit pace is the
point.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from common.compat import timeout as compat_timeout
from demos.manifest import load_manifest
from gateway import metrics

pytestmark = pytest.mark.integration

STREAM = Path(__file__).resolve().parents[2] / "fixtures" / "stream"
MANIFEST = load_manifest(STREAM)


def wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.port}/"


def norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


async def stream_and_read(ws: ClientConnection, pcm: np.ndarray, timeout: float = 60.0
                          ) -> list[tuple[float, dict[str, Any]]]:
    """Send ``pcm`` in real time, then ``end``; every message with the audio position (seconds
    of the clip sent) at which it arrived."""
    began = time.monotonic()
    sent = 0.0
    out: list[tuple[float, dict[str, Any]]] = []

    async def send() -> None:
        nonlocal sent
        chunk = 1600
        for i in range(0, len(pcm), chunk):
            await ws.send(pcm[i : i + chunk].tobytes())
            sent = (i + chunk) / 16000
            # Paced on the wall clock so the sender does not drift behind real time.
            await asyncio.sleep(max(0.0, began + sent - time.monotonic()))
        await ws.send(json.dumps({"type": "end"}))

    sender = asyncio.create_task(send())
    async with compat_timeout(timeout):
        async for raw in ws:
            msg = json.loads(raw)
            out.append((time.monotonic() - began, msg))
            if msg["type"] == "done":
                break
    await sender
    return out


def index(message: dict[str, Any]) -> int:
    return int(message["segment_id"].rsplit(":", 1)[1])


def partial_audio_counts() -> tuple[float, float]:
    """(observations of partial job audio, of them at most 10 s) from the gateway's histogram."""
    total = small = 0.0
    for metric in metrics.PARTIAL_AUDIO_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                total = sample.value
            if sample.name.endswith("_bucket") and sample.labels.get("le") == "10.0":
                small = sample.value
    return total, small


async def test_continuous_turn_gets_several_finals_before_it_ends(make_gateway: Any, stt_worker: Any) -> None:
    clip = MANIFEST.clips["continuous"]
    gw = await make_gateway(silence_threshold_seconds=2.0, pre_speech_buffer_seconds=1.0)
    before_total, before_small = partial_audio_counts()
    async with connect(url(gw)) as ws:
        messages = await stream_and_read(ws, wav(STREAM / clip.file))
    kinds = [m["type"] for _, m in messages]
    assert kinds.count("vad") == 2, "the clip is one turn: one speech_start, one speech_end"
    turn_over = next(i for i, (_, m) in enumerate(messages) if m.get("event") == "speech_end")
    finals = [m for _, m in messages if m["type"] == "final"]
    early = [m for _, m in messages[:turn_over] if m["type"] == "final"]
    assert len(early) >= 2, f"finals before the turn ended: {[m['text'] for m in early]}"
    # In order, each unit exactly once, spans one after the other.
    ids = [m["segment_id"] for m in finals]
    assert len(ids) == len(set(ids))
    assert [index(m) for m in finals] == sorted(index(m) for m in finals)
    for a, b in itertools.pairwise(finals):
        assert a["end"] <= b["start"] + 1e-6
    # Nothing lost or repeated: the finals together say what was said.
    said = " ".join(m["text"] for m in finals)
    assert jiwer.wer(norm(clip.reference_text), norm(said)) < 0.25, said
    # The turn-end marker follows the last final and names it.
    turn_end = [m for _, m in messages if m["type"] == "turn_end"]
    assert len(turn_end) == 1 and turn_end[0]["segment_id"] == finals[-1]["segment_id"]
    assert kinds.index("turn_end") > max(i for i, k in enumerate(kinds) if k == "final")
    # Every partial job carried less than 10 s of this 13 s turn: only the uncommitted tail.
    total, small = partial_audio_counts()
    assert total - before_total >= 5
    assert small - before_small == total - before_total


async def test_partials_go_on_after_pauses_shorter_than_the_threshold(make_gateway: Any, stt_worker: Any) -> None:
    clip = MANIFEST.clips["pauses"]
    gw = await make_gateway(silence_threshold_seconds=2.0, pre_speech_buffer_seconds=1.0)
    async with connect(url(gw)) as ws:
        messages = await stream_and_read(ws, wav(STREAM / clip.file))
    assert sum(1 for _, m in messages if m.get("event") == "speech_end") == 1
    partial_times = [t for t, m in messages if m["type"] == "realtime"]
    _, second, third = clip.utterances
    # A partial while each sentence after a pause (0.8 s, then 1.5 s) is being spoken.
    for sentence in (second, third):
        assert any(sentence.start + 0.3 < t < sentence.end + 0.6 for t in partial_times), (
            f"no partial during {sentence.text!r}: partials at {partial_times}"
        )
    finals = [m for _, m in messages if m["type"] == "final"]
    assert len(finals) >= 3, [m["text"] for m in finals]
    # The first sentence is final before the next one has been spoken (committed at the pause).
    first_final_at = next(t for t, m in messages if m["type"] == "final")
    assert first_final_at < second.end
    said = " ".join(m["text"] for m in finals)
    assert jiwer.wer(norm(clip.reference_text), norm(said)) < 0.25, said
