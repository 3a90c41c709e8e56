"""End to end: every final (and translation) a client received live is readable through the
REST API, in order, after the whole stack — embedded Redis included — has been stopped and
started again. Only the transcript database in DATA_DIR survives the restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect

from common import subtitles
from common.embedded_redis import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "gateway" / "speech_piper.wav"


def _start(env: dict[str, str], ports: dict[str, int]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "common.cli", "up", "--gateway-port", str(ports["ws"]),
           "--gateway-health-port", str(ports["gw"]), "--stt-health-port", str(ports["stt"]),
           "--translation-health-port", str(ports["tr"]), "--store-health-port", str(ports["store"])]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = ""
    while "ready in" not in out:  # the runner prints this once every service is ready
        line = proc.stdout.readline()
        assert line, f"speech-pipeline up exited: {out[-2000:]}"
        out += line
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _session(url: str) -> list[dict[str, Any]]:
    """Stream the speech at 4x real time with translation to German; every message until done."""
    with wave.open(str(SPEECH)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        rate = wav.getframerate()
    step = int(rate * 0.032)
    messages: list[dict[str, Any]] = []
    async with connect(url, max_size=2**20) as ws:
        messages.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "config", "target_language": "de", "sample_rate": rate}))

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                messages.append(msg)
                if msg["type"] == "done":
                    return

        read = asyncio.create_task(reader())
        started = time.monotonic()
        for i in range(0, len(pcm), step):
            await ws.send(pcm[i:i + step].tobytes())
            delay = started + (i + step) / rate / 4 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(read, 120)
    return messages


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
        return json.loads(body) if r.headers.get_content_type() == "application/json" else body


@pytest.mark.timeout(600)
def test_every_final_is_readable_in_order_after_the_whole_stack_restarts(
    tmp_path: Path, tiny_translation_model: Path
) -> None:
    ports = {k: free_port() for k in ("ws", "gw", "stt", "tr", "store")}
    env = {**os.environ, "MODEL_SIZE": "tiny.en", "BEAM_SIZE": "1", "SILENCE_THRESHOLD_SECONDS": "0.8",
           "PRE_SPEECH_BUFFER_SECONDS": "0.3", "CPU_THREADS": "2", "LOG_LEVEL": "WARNING",
           "TRANSLATION_MODEL": str(tiny_translation_model), "DATA_DIR": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)  # the embedded Redis: it does not survive the restart
    env.pop("DATABASE_URL", None)  # the embedded default: SQLite in DATA_DIR
    proc = _start(env, ports)
    try:
        messages = asyncio.run(_session(f"ws://127.0.0.1:{ports['ws']}/"))
    finally:
        _stop(proc)
    session_id = messages[0]["session_id"]
    finals = [m for m in messages if m["type"] == "final"]
    translated = {m["segment_id"]: m["text"] for m in messages if m["type"] == "translation"}
    assert len(finals) >= 2 and any(f["text"].strip() for f in finals)
    assert translated, "no translation arrived live"

    proc = _start(env, ports)
    try:
        base = f"http://127.0.0.1:{ports['ws']}/v1/sessions"
        listed = _get(base)["sessions"]
        assert [s["session_id"] for s in listed] == [session_id]
        stored = _get(f"{base}/{session_id}/transcript?translation=de")
        assert [(s["segment_id"], s["text"]) for s in stored["segments"]] == [
            (f["segment_id"], f["text"]) for f in finals
        ]
        for segment, live in zip(stored["segments"], finals, strict=True):
            assert (segment["start"], segment["end"], segment["language"]) == (live["start"], live["end"],
                                                                               live["language"])
            assert segment["translation"] == translated.get(live["segment_id"])
        srt = _get(f"{base}/{session_id}/transcript?format=srt")
        assert [c.text for c in subtitles.parse_srt(srt)] == [
            " ".join(f["text"].split()) for f in finals if f["text"].strip()
        ]
    finally:
        _stop(proc)
