"""Defect 3 of issue 13 on the real gateway: races and silent failures of the session shell."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import threading
import time
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from common import bus
from common.compat import timeout as compat_timeout
from gateway.ordering import ResultOrderer
from gateway.segmenter import Segmenter

from .test_gateway import clip, read_all, read_until, send_audio, url

pytestmark = pytest.mark.integration


async def recv_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def final_jobs(admin: aioredis.Redis, sid: str, count: int) -> list[bus.AudioJob]:
    async with compat_timeout(15):
        while True:
            jobs = [job for job, _ in (bus.decode_audio_job(f) for _id, f in await admin.xrange(bus.AUDIO_JOBS))
                    if job.session_id == sid and job.kind == "final"]
            if len(jobs) >= count:
                return jobs
            await asyncio.sleep(0.05)


async def publish(admin: aioredis.Redis, job: bus.AudioJob, text: str) -> None:
    result = bus.FinalResult(session_id=job.session_id, segment_id=job.segment_id,
                             utterance_index=job.utterance_index, text=text, start=job.start, end=job.end)
    async with admin.pipeline(transaction=False) as pipe:
        bus.publish_result(pipe, result)
        await pipe.execute()


async def test_a_failing_timer_is_logged_and_closes_the_connection(
    make_gateway: Any, monkeypatch: Any, caplog: Any
) -> None:
    """The old ticker task was never awaited: when it raised, the session silently lost its
    idle timeout, token expiry and ``done``."""
    gw = await make_gateway(idle_timeout_seconds=1.0)

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("orderer broke")

    async with connect(url(gw)) as ws:
        await recv_json(ws)
        monkeypatch.setattr(ResultOrderer, "release", broken)
        with caplog.at_level(logging.ERROR), pytest.raises(ConnectionClosed):
            while True:
                await recv_json(ws, timeout=10)
    assert ws.close_code == 1011
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert failures and "orderer broke" in str(failures[0].exc_info[1])


async def test_a_big_frame_is_never_segmented_while_the_timer_uses_the_segmenter(
    make_gateway: Any, monkeypatch: Any
) -> None:
    """A frame over 16000 samples is segmented in a thread; the timer (here the idle timeout,
    which flushes) must wait for it instead of using the same segmenter at the same time."""
    inside = threading.Event()
    overlaps: list[str] = []
    feed, flush = Segmenter.feed, Segmenter.flush

    def slow_feed(self: Segmenter, pcm: np.ndarray) -> Any:
        inside.set()
        try:
            time.sleep(0.6)  # a slow segmentation, in the worker thread
            return feed(self, pcm)
        finally:
            inside.clear()

    def watched_flush(self: Segmenter) -> Any:
        if inside.is_set():
            overlaps.append("flush during feed")
        return flush(self)

    monkeypatch.setattr(Segmenter, "feed", slow_feed)
    monkeypatch.setattr(Segmenter, "flush", watched_flush)
    gw = await make_gateway(idle_timeout_seconds=0.2)
    async with connect(url(gw)) as ws:
        await recv_json(ws)
        await ws.send(np.zeros(32000, dtype=np.int16).tobytes())
        messages = await read_all(ws, timeout=15)
    assert overlaps == []
    assert [m.get("code") for m in messages if m["type"] == "error"] == ["idle_timeout"]
    assert messages[-1]["type"] == "done"


async def test_a_long_session_log_is_replayed_whole_and_in_seq_order(idle_redis: Any, make_gateway: Any) -> None:
    """The log holds more results than the send queue (and a retried write may have put them
    out of order): a resume gets all of them, in seq order, once."""
    admin = aioredis.Redis.from_url(idle_redis.url)
    gw = await make_gateway(idle_redis.url, send_queue_size=32)
    sid, secret, count = "longsession", "the-secret", 300
    config = {"source_language": None, "target_language": None, "sample_rate": 16000, "partials": True,
              "word_timestamps": False}
    await admin.hset(bus.session_key(sid), mapping={
        "config": json.dumps(config), "next_seq": count + 1, "next_utterance": count, "delivered_below": count,
        "gateway": "gone", "holder": "gone", "last_final": "", "owner": "",
        "secret_hash": hashlib.sha256(secret.encode()).hexdigest(),
    })
    order = list(range(1, count + 1))
    random.Random(7).shuffle(order)
    for seq in order:
        message = {"type": "final", "segment_id": f"{sid}:{seq - 1}", "text": f"final {seq}", "start": 0.0,
                   "end": 1.0, "seq": seq}
        await admin.xadd(bus.session_log_key(sid), {"seq": seq, "msg": json.dumps(message)})
    try:
        async with connect(url(gw)) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "config", "session_id": sid, "last_seq": 0, "resume_secret": secret}))
            got = await read_until(ws, lambda m: m["type"] == "ready" and m["session_id"] == sid, timeout=30)
        seqs = [m["seq"] for m in got if m["type"] == "final"]
        assert seqs == list(range(1, count + 1))
    finally:
        await admin.aclose()


async def test_a_final_held_when_the_client_dropped_reaches_the_resumed_session(
    idle_redis: Any, make_gateway: Any
) -> None:
    """Utterance 1's final arrives while 0's is still awaited, and the client drops. The old
    detached connection held 1 and never let it go; the resumed session must deliver it."""
    admin = aioredis.Redis.from_url(idle_redis.url)
    gw1 = await make_gateway(idle_redis.url, result_wait_seconds=1.0, stt_send_interval=100.0)
    gw2 = await make_gateway(idle_redis.url, result_wait_seconds=1.0, stt_send_interval=100.0)
    try:
        async with connect(url(gw1)) as ws:
            ready = await recv_json(ws)
            sid, secret = ready["session_id"], ready["resume_secret"]
            for name in ("en_weather", "en_coffee"):
                await send_audio(ws, clip(name), speed=20)
                await ws.send(json.dumps({"type": "flush"}))
            jobs = sorted(await final_jobs(admin, sid, 2), key=lambda j: j.utterance_index)
            await publish(admin, jobs[1], "the second")
            await asyncio.sleep(0.3)  # gw1 reads it and holds it: 0 is still awaited
        await asyncio.sleep(2.0)  # the dropped connection has let go
        async with connect(url(gw2)) as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "config", "session_id": sid, "last_seq": 0, "resume_secret": secret}))
            got = await read_until(ws, lambda m: m["type"] == "final", timeout=15)
            await ws.send(json.dumps({"type": "end"}))
            rest = await read_all(ws, timeout=15)
        finals = [m for m in got + rest if m["type"] == "final"]
        assert [(f["segment_id"], f["text"]) for f in finals] == [(f"{sid}:1", "the second")]
        assert rest[-1]["type"] == "done"
    finally:
        await admin.aclose()


async def test_shutdown_is_not_held_up_by_a_detached_session_waiting_for_results(
    idle_redis: Any, make_gateway: Any
) -> None:
    """The old connection waited up to RESULT_WAIT_SECONDS for its results after the client
    left, longer than the 10 s shutdown budget."""
    gw = await make_gateway(idle_redis.url, result_wait_seconds=60.0, stt_send_interval=100.0)
    admin = aioredis.Redis.from_url(idle_redis.url)
    try:
        async with connect(url(gw)) as ws:
            sid = (await recv_json(ws))["session_id"]
            await send_audio(ws, clip("en_weather"), speed=20)
            await ws.send(json.dumps({"type": "flush"}))
            await final_jobs(admin, sid, 1)
        async with compat_timeout(10):  # the shutdown budget
            while gw.ctx.connections:  # the connection lets go without its result
                await asyncio.sleep(0.05)
            await gw.shutdown()
    finally:
        await admin.aclose()
