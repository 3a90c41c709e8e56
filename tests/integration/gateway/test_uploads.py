"""The upload runner on a real Redis and a real gateway's router, with a stand-in worker at the
model boundary (the test is about queueing, windows and lost results, not transcription)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from common import bus
from gateway.uploads import Piece, UploadOptions, UploadRunner

pytestmark = pytest.mark.integration


def pieces(n: int) -> list[Piece]:
    return [Piece(i, 2.0 * i + 0.2, 2.0 * i + 1.5, 2.0 * i, np.zeros(16000, np.int16)) for i in range(n)]


async def stand_in_worker(redis: aioredis.Redis, stop: asyncio.Event, *, drop_first_of: int, seen: list[int],
                          max_queued: list[int]) -> None:
    """Answers every piece on audio_jobs with a final; the first answer for one piece is lost."""
    last = "0"
    dropped = False
    while not stop.is_set():  # a flag, not cancel(): redis-py retries a cancelled blocking read
        entries = await redis.xread({bus.AUDIO_JOBS: last}, block=100, count=10)
        for _, items in entries or []:
            for entry_id, fields in items:
                last = entry_id
                max_queued.append(int(await redis.xlen(bus.AUDIO_JOBS)))
                job, _ = bus.decode_audio_job(fields)
                await redis.xdel(bus.AUDIO_JOBS, entry_id)
                assert job.priority == "batch" and job.kind == "final"
                seen.append(job.utterance_index)
                if job.utterance_index == drop_first_of and not dropped:
                    dropped = True  # as if the worker died after the job left the stream
                    continue
                result = bus.FinalResult(session_id=job.session_id, segment_id=job.segment_id,
                                         utterance_index=job.utterance_index, text=f"piece {job.utterance_index}",
                                         start=job.start, end=job.end)
                for _ in range(2):  # a duplicate delivery of the same final must not come out twice
                    async with redis.pipeline(transaction=False) as pipe:
                        bus.publish_result(pipe, result)
                        await pipe.execute()


async def test_lost_result_is_queued_again_and_every_piece_comes_out_once_in_order(
    make_gateway: Any, idle_redis: Any,
) -> None:
    gw = await make_gateway(redis_url=idle_redis.url, upload_jobs_per_worker=2)
    redis = aioredis.Redis.from_url(idle_redis.url)
    seen: list[int] = []
    depth: list[int] = []
    stop = asyncio.Event()
    worker = asyncio.create_task(stand_in_worker(redis, stop, drop_first_of=1, seen=seen, max_queued=depth))
    try:
        runner = UploadRunner(gw.ctx, UploadOptions(), piece_timeout=0.5)
        out = [f async for f in runner.run(pieces(6))]
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
        await redis.aclose()
    assert [f.utterance_index for f in out] == [0, 1, 2, 3, 4, 5]
    assert seen.count(1) == 2  # the lost one was queued again
    assert max(depth) <= 2  # no STT heartbeat here: the window is one worker's worth
