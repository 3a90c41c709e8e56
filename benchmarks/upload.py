"""Uploads on the live pipeline: the RTF of a long file, and what it does to live sessions.

    python -m benchmarks.upload [--minutes 10] [--live-clients 8] [--workers 1 2]

For each STT worker count it starts ``speech-pipeline up`` (tiny.en unless MODEL_SIZE is set)
on free ports and measures, one after the other:

1. the file alone: wall time of ``POST /v1/audio/transcriptions`` (official ``openai`` client)
   over the file's duration (RTF), and which worker took each piece;
2. ``--live-clients`` real-time demo clients alone: end of speech -> final, p50 / p95;
3. both at once: the live p95 while the file is transcribed, and the file's RTF under load.

The file is a monologue of the English fixtures and demo sentences with gaps of 0.3-1.2 s
(no long pauses), ``--minutes`` long. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis

from common import bus
from common.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "tests" / "fixtures" / "stt").glob("en_*.wav")), ROOT / "demos" / "audio" / "en.wav"]


def read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def monologue(minutes: float, seed: int = 7) -> bytes:
    """A WAV of speech with short gaps (0.3-1.2 s), ``minutes`` long."""
    rng = random.Random(seed)
    clips = [read_pcm(p) for p in SOURCES if p.exists()]
    parts: list[np.ndarray] = []
    total = 0
    while total < minutes * 60 * 16000:
        clip = clips[rng.randrange(len(clips))]
        gap = np.zeros(int(rng.uniform(0.3, 1.2) * 16000), np.int16)
        parts += [clip, gap]
        total += len(clip) + len(gap)
    pcm = np.concatenate(parts)[: int(minutes * 60 * 16000)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class Stack:
    """``speech-pipeline up`` on free ports, stopped with SIGINT."""

    def __init__(self, workers: int, redis_url: str) -> None:
        self.ws_port, self.gw_health, self.stt_health, self.tr_health = (free_port() for _ in range(4))
        env = {**os.environ, "MODEL_SIZE": os.environ.get("MODEL_SIZE", "tiny.en"), "LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "common.cli", "up", "--stt-workers", str(workers), "--redis-url", redis_url,
             "--gateway-port", str(self.ws_port), "--gateway-health-port", str(self.gw_health),
             "--stt-health-port", str(self.stt_health), "--translation-health-port", str(self.tr_health)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("speech-pipeline up exited")
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.gw_health}/ready", timeout=1).status == 200 and \
                        urllib.request.urlopen(f"http://127.0.0.1:{self.stt_health}/ready", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError("stack not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def upload(port: int, data: bytes, redis_url: str) -> tuple[float, Counter[str], int]:
    """Seconds to transcribe ``data``; pieces per worker (from the upload's result stream); words."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                                timeout=3600)
    redis = aioredis.Redis.from_url(redis_url)
    workers: Counter[str] = Counter()
    pattern = bus.result_stream_key(bus.upload_session_id("*"))
    earlier = {key async for key in redis.scan_iter(match=pattern)}  # an earlier upload's
    try:
        started = time.perf_counter()
        result = await client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", data))
        elapsed = time.perf_counter() - started
        # Every piece's final went to the upload session's result stream (kept for its TTL).
        async for key in redis.scan_iter(match=pattern):
            if key in earlier:
                continue
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(key)  # type: ignore[assignment]
            for _, fields in entries:
                if b"r" in fields and isinstance(final := bus.decode_result(fields[b"r"]), bus.FinalResult):
                    workers[final.worker] += 1
    finally:
        await client.close()
        await redis.aclose()
    return elapsed, workers, len(result.text.split())


def live(port: int, clients: int, out: Path) -> dict[str, float]:
    """The demo client with ``clients`` real-time sessions; its end-of-speech -> final figures."""
    subprocess.run(
        [sys.executable, str(ROOT / "demos" / "demo_client.py"), "--url", f"ws://127.0.0.1:{port}/",
         "--clients", str(clients), "--json", str(out), "--no-progress"],
        cwd=ROOT, check=False, stdout=subprocess.DEVNULL,
    )
    figures = json.loads(out.read_text())
    latency = figures["latency"]["final"]  # end of speech -> final
    return {"p50": latency["p50"], "p95": latency["p95"], "success": figures["success_rate"]}


async def measure(workers: int, data: bytes, seconds: float, clients: int, tmp: Path) -> dict[str, object]:
    with EmbeddedRedis() as redis:
        stack = Stack(workers, redis.url)
        try:
            stack.wait_ready()
            alone, spread, words = await upload(stack.ws_port, data, redis.url)
            live_alone = await asyncio.to_thread(live, stack.ws_port, clients, tmp / f"alone{workers}.json")
            up = asyncio.create_task(upload(stack.ws_port, data, redis.url))
            await asyncio.sleep(1.0)  # the upload is under way before the live clients start speaking
            live_loaded = await asyncio.to_thread(live, stack.ws_port, clients, tmp / f"loaded{workers}.json")
            loaded, spread_loaded, _ = await up
            return {"workers": workers, "rtf_alone": alone / seconds, "rtf_loaded": loaded / seconds,
                    "words": words, "spread": dict(spread), "spread_loaded": dict(spread_loaded),
                    "live_alone": live_alone, "live_loaded": live_loaded}
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--live-clients", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    data = monologue(args.minutes)
    seconds = args.minutes * 60
    print(f"file: {seconds:.0f} s of speech with 0.3-1.2 s gaps, {len(data) / 1e6:.1f} MB WAV; "
          f"live: {args.live_clients} real-time demo clients; model {os.environ.get('MODEL_SIZE', 'tiny.en')}")
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            r = asyncio.run(measure(w, data, seconds, args.live_clients, Path(tmp)))
            la, ll = r["live_alone"], r["live_loaded"]
            assert isinstance(la, dict) and isinstance(ll, dict)
            print(f"{w} STT worker(s): file RTF {r['rtf_alone']:.3f} alone, {r['rtf_loaded']:.3f} beside live "
                  f"clients ({r['words']} words; pieces per worker {r['spread']} alone, {r['spread_loaded']} beside); "
                  f"live end of speech -> final p50/p95 {la['p50']:.2f}/{la['p95']:.2f} s alone, "
                  f"{ll['p50']:.2f}/{ll['p95']:.2f} s during the upload (success {ll['success']:.0%})")


if __name__ == "__main__":
    main()
