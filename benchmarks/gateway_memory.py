"""Benchmark: what a gateway keeps across many finished sessions, and what gives it back.

A real gateway in this process and an STT worker shell with an instant engine in a child
process (``benchmarks.overhead``'s), on an embedded Redis. Rounds of ``--concurrency``
sessions each stream a clip (conversational by default) at ``--pace`` times real time and
end; after each round the gateway is at rest and its RSS is read after one of:

* ``idle``: what the gateway does itself when no session is open (``common.memtrim``: a full
  garbage collection, then ``malloc_trim``);
* ``trim``: ``malloc_trim`` only (what it did before the collection was added);
* ``none``: nothing; the collector and the allocator as they are.

It prints RSS and live object count per round and the least-squares slope per 100 sessions
after the first round.

    python -m benchmarks.gateway_memory [--sessions 100] [--concurrency 10] [--pace 8]
                                        [--release idle|trim|none] [--clip PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import wave
from pathlib import Path

import numpy as np
from pydantic import SecretStr
from websockets.asyncio.client import connect

from benchmarks.overhead import serve_child
from common.embedded_redis import EmbeddedRedis
from common.memdebug import rss_bytes
from common.memtrim import release_free_heap
from common.settings import GatewaySettings
from gateway.service import GatewayService

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "demos" / "audio" / "conversation" / "dialogue0.wav"
MB = 2**20


def read_clip(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


async def one_session(port: int, pcm: np.ndarray, pace: float) -> None:
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "partials": True}))
        await ws.recv()
        for i in range(0, len(pcm), 1600):  # 0.1 s frames
            await ws.send(pcm[i : i + 1600].tobytes())
            await asyncio.sleep(0.1 / pace)
        await ws.send(json.dumps({"type": "end"}))
        while json.loads(await ws.recv())["type"] != "done":
            pass


async def release(gateway: GatewayService, how: str) -> None:
    if how == "idle":
        await gateway.trim.release("idle")
    elif how == "trim":
        release_free_heap()


def slope_per_100(points: list[tuple[int, float]]) -> float:
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    return float(np.polyfit(xs, ys, 1)[0] * 100) if len(points) > 1 else 0.0


async def run(sessions: int, concurrency: int, pace: float, how: str, clip: Path) -> list[tuple[int, float]]:
    pcm = read_clip(clip)
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Queue(), ctx.Event()
    with EmbeddedRedis() as redis:
        worker = ctx.Process(target=serve_child, args=("worker", redis.url, started, stop), daemon=True)
        worker.start()
        await asyncio.to_thread(started.get, True, 120)
        # No idle trim of its own (the round's release is the variable), no per-IP limits.
        gateway = GatewayService(GatewaySettings(
            redis_url=SecretStr(redis.url), gateway_port=0, health_port=0, session_ttl_seconds=30,
            memory_trim_idle_seconds=0, connections_per_ip_per_minute=1_000_000,
            unauthenticated_connections_per_ip=1000,
        ))
        await gateway.startup()
        points: list[tuple[int, float]] = []
        try:
            for done in range(concurrency, sessions + 1, concurrency):
                await asyncio.gather(*(one_session(gateway.port, pcm, pace) for _ in range(concurrency)))
                await release(gateway, how)
                points.append((done, rss_bytes() / MB))
                print(f"  sessions {done:5d}  rss {points[-1][1]:7.1f} MB  objects {len(gc.get_objects()):7d}",
                      flush=True)
        finally:
            await gateway.shutdown()
            stop.set()
            worker.join(30)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--pace", type=float, default=8.0, help="times real time")
    parser.add_argument("--release", choices=("idle", "trim", "none"), default="idle")
    parser.add_argument("--clip", type=Path, default=CLIP)
    args = parser.parse_args()
    if not args.clip.exists():
        raise SystemExit(f"{args.clip} is missing: build the conversational clips with python -m demos.conversation")
    print(f"gateway memory, {args.sessions} sessions of {args.clip.name} ({args.concurrency} at a time, "
          f"{args.pace:g}x real time), release after each round: {args.release}")
    points = asyncio.run(run(args.sessions, args.concurrency, args.pace, args.release, args.clip))
    print(f"slope after the first round: {slope_per_100(points[1:]):+.2f} MB per 100 sessions")


if __name__ == "__main__":
    main()
