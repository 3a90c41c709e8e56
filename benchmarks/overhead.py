"""Benchmark: the pipeline's own overhead per utterance, everything but inference.

A real Redis (embedded), a real gateway and a real STT worker shell run in this process; only
the model is replaced by an engine that answers at once (the boundary), so what is timed is
the pipeline itself: segmenter flush, job encoding, XADD, XREADGROUP, job selection, the
result stream's XADD, the gateway's XREAD, decoding, ordering and the WebSocket send. For each
utterance the client streams a clip as fast as it can, sends ``flush``, and times ``flush`` ->
``final``.

    python -m benchmarks.overhead [--utterances 40] [--processes]

By default all three run on one event loop in this process, so work done after a send
(the session log, the transcript store's copy, the worker's ack and next read) runs before
the client's receive and counts as latency. ``--processes`` runs the gateway and the worker
in child processes, as they are deployed; that work then overlaps the client instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _clip() -> np.ndarray:
    with wave.open(str(CLIP)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


async def _client(port: int, pcm: np.ndarray, utterances: int) -> list[float]:
    """One session: per utterance, the clip as fast as the socket takes it, then ``flush`` ->
    ``final`` timed."""
    timings: list[float] = []
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
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
    return timings


def _worker_settings(url: str) -> SttSettings:
    return SttSettings(redis_url=SecretStr(url), health_port=0, batch_timeout_ms=0)


def _gateway_settings(url: str) -> GatewaySettings:
    return GatewaySettings(redis_url=SecretStr(url), gateway_port=0, health_port=0)


async def run(utterances: int) -> list[float]:
    """Gateway, worker and client in this process, on one event loop."""
    pcm = _clip()
    with EmbeddedRedis() as redis:
        worker = InstantSttWorker(_worker_settings(redis.url), "instant")
        gateway = GatewayService(_gateway_settings(redis.url))
        await worker.startup()
        worker_task = asyncio.create_task(worker.main_loop())
        await gateway.startup()
        try:
            return await _client(gateway.port, pcm, utterances)
        finally:
            await gateway.shutdown()
            worker.request_stop()
            await worker_task
            await worker.shutdown()


def serve_child(kind: str, url: str, started: Any, stop: Any) -> None:
    """A child process: the worker or the gateway until ``stop`` is set; ``started`` gets
    ``(kind, port)`` once it serves (the worker's consumer group exists by then)."""

    async def serve() -> None:
        if kind == "worker":
            worker = InstantSttWorker(_worker_settings(url), "instant")
            await worker.startup()
            task = asyncio.create_task(worker.main_loop())
            started.put((kind, 0))
            await asyncio.to_thread(stop.wait)
            worker.request_stop()
            await task
            await worker.shutdown()
        else:
            gateway = GatewayService(_gateway_settings(url))
            await gateway.startup()
            started.put((kind, gateway.port))
            await asyncio.to_thread(stop.wait)
            await gateway.shutdown()

    asyncio.run(serve())


async def run_processes(utterances: int) -> list[float]:
    """Gateway, worker and client each in its own process, as deployed: what a service does
    after sending (the session log, the transcript store's copy, the worker's ack, the next
    read) then overlaps the client's receive instead of running before it on one loop."""
    pcm = _clip()
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Queue(), ctx.Event()
    with EmbeddedRedis() as redis:
        children = [ctx.Process(target=serve_child, args=(kind, redis.url, started, stop), daemon=True)
                    for kind in ("worker", "gateway")]
        for child in children:
            child.start()
        try:
            ready = dict(await asyncio.to_thread(lambda: [started.get(timeout=120) for _ in children]))
            return await _client(ready["gateway"], pcm, utterances)
        finally:
            stop.set()
            for child in children:
                child.join(30)
                if child.is_alive():
                    child.kill()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--processes", action="store_true",
                        help="gateway, worker and client in separate processes (as deployed)")
    args = parser.parse_args(argv)
    timings = asyncio.run(run_processes(args.utterances) if args.processes else run(args.utterances))
    ms = sorted(t * 1000 for t in timings)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    where = "separate processes" if args.processes else "one process"
    print(f"pipeline overhead per utterance (flush -> final, instant model, {where}), n={len(ms)}")
    print(f"  p50 {statistics.median(ms):.2f} ms   p95 {p95:.2f} ms   max {ms[-1]:.2f} ms")


if __name__ == "__main__":
    main()
