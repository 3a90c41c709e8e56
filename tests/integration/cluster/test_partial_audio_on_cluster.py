"""Partials by reference on a real Redis Cluster: the session's audio stream lives on the
session's slot and the job on its shard (another node, often), so the writer appends the
audio first and then queues the job, one after the other; the worker's cache reads it back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from common import bus
from common.embedded_cluster import EmbeddedCluster
from common.redis_conn import connect_with
from common.settings import CommonSettings
from gateway import session_actions as sa
from gateway.router import ResultRouter
from gateway.session_writer import SessionWriter
from gateway.sessions import SessionConfig, SessionStore
from stt_worker.session_audio import SessionAudioCache

pytestmark = pytest.mark.integration

SR = 16000
SETTINGS = SimpleNamespace(session_ttl_seconds=60, max_uncommitted_seconds=8.0, stt_send_interval=0.5,
                           streaming_commits=True, max_segment_seconds=30.0)


@pytest.fixture
async def cluster_client(redis_cluster: EmbeddedCluster) -> AsyncIterator[aioredis.Redis]:
    settings = CommonSettings(redis_url=redis_cluster.url, redis_cluster=True, stream_shards=4,  # type: ignore[arg-type]
                              redis_connect_timeout_seconds=10)
    client = await connect_with(settings)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    try:
        yield client
    finally:
        await client.aclose()


async def test_partials_by_reference_on_a_cluster(cluster_client: Any) -> None:
    assert bus.layout().cluster
    session = "cluster-session"
    audio = np.random.default_rng(7).integers(-8000, 8000, 3 * SR).astype(np.int16)
    tails = [(0, 16000), (0, 32000), (24000, 48000)]
    store = SessionStore(cluster_client, ttl_seconds=60, log_maxlen=100)
    await store.create(session, "me", SessionConfig(), owner="", secret="x")
    ctx = SimpleNamespace(redis=cluster_client, store=store, router=ResultRouter(cluster_client), name="gw",
                          settings=SETTINGS)
    writer = SessionWriter(ctx, "me", lambda: session, lambda sid, item: None, lambda: None)  # type: ignore[arg-type]
    appended = 0
    for seq, (first, last) in enumerate(tails):
        job = bus.AudioJob(kind="partial", session_id=session, utterance_index=0, partial_seq=seq,
                           segment_id=bus.segment_id(session, 0), start=0.0, end=last / SR, created_at=0.0,
                           audio_samples=(first, last))
        writer.put(sa.QueueAudio(job, audio[first:last], append_from=max(first, appended)))
        appended = last
    writer.stop()
    await asyncio.wait_for(writer.run(), 10)

    assert await cluster_client.ttl(bus.session_audio_key(session)) > 0
    entries = await cluster_client.xrange(bus.audio_jobs_stream(session))
    jobs = [bus.decode_audio_job(fields) for _id, fields in entries]
    assert [len(pcm) for _job, pcm in jobs] == [0, 0, 0]
    cache = SessionAudioCache()
    for (job, _pcm), (first, last) in zip(jobs, tails, strict=True):
        got = await cache.audio(cluster_client, job, now=0.0)
        assert got is not None and np.array_equal(got, audio[first:last])
