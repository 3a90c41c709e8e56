"""Benchmark: the pipeline's own overhead per utterance, everything but inference.

A real Redis (embedded), a real gateway and a real STT worker shell run in this process; only
the model is replaced by an engine that answers at once (the boundary), so what is timed is
the pipeline itself: segmenter flush, job encoding, XADD, XREADGROUP, job selection, the
result stream's XADD, the gateway's XREAD, decoding, ordering and the WebSocket send. For each
utterance the client streams a clip as fast as it can, sends ``flush``, and times ``flush`` ->
``final``.

    python -m benchmarks.overhead [--utterances 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import SecretStr
from websockets.asyncio.client import connect

from common.embedded_redis import EmbeddedRedis
from common.settings import GatewaySettings, SttSettings
from gateway.service import GatewayService
from stt_worker.engine import TranscribeRequest, Transcript
from stt_worker.worker import SttWorker

CLIP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stt" / "en_weather.wav"


class InstantEngine:
    """Stands in for the model: answers every request at once."""

    load_seconds = 0.0

    def transcribe_batch(self, reqs: Sequence[TranscribeRequest]) -> list[Transcript]:
        return [
            Transcript(text="ok", language="en", language_probability=1.0, words=None, inference_seconds=0.0,
                       no_speech_prob=0.0, avg_logprob=0.0)
            for _ in reqs
        ]


class InstantSttWorker(SttWorker):
    def load_model(self) -> None:
        self.engine = InstantEngine()  # type: ignore[assignment]


async def run(utterances: int) -> list[float]:
    with wave.open(str(CLIP)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    with EmbeddedRedis() as redis:
        url = SecretStr(redis.url)
        worker = InstantSttWorker(SttSettings(redis_url=url, health_port=0, batch_timeout_ms=0), "instant")
        gateway = GatewayService(
            GatewaySettings(redis_url=url, gateway_port=0, health_port=0)
        )
        await worker.startup()
        worker_task = asyncio.create_task(worker.main_loop())
        await gateway.startup()
        timings: list[float] = []
        try:
            async with connect(f"ws://127.0.0.1:{gateway.port}/") as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "config", "partials": False}))
                await ws.recv()
                for _ in range(utterances):
                    for i in range(0, len(pcm), 4096):
                        await ws.send(pcm[i : i + 4096].tobytes())
                    await asyncio.sleep(0.05)  # let the gateway analyse what it was sent
                    started = time.perf_counter()
                    await ws.send(json.dumps({"type": "flush"}))
                    while True:
                        message = json.loads(await ws.recv())
                        if message["type"] == "final":
                            timings.append(time.perf_counter() - started)
                            break
        finally:
            await gateway.shutdown()
            worker.request_stop()
            await worker_task
            await worker.shutdown()
    return timings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=40)
    args = parser.parse_args(argv)
    timings = asyncio.run(run(args.utterances))
    ms = sorted(t * 1000 for t in timings)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"pipeline overhead per utterance (flush -> final, instant model), n={len(ms)}")
    print(f"  p50 {statistics.median(ms):.2f} ms   p95 {p95:.2f} ms   max {ms[-1]:.2f} ms")


if __name__ == "__main__":
    main()
