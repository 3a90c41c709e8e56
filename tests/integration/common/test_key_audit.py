"""Every per-session Redis key the gateway writes has a TTL, and the audit catches one that
has not (the soak's Redis check, on the real writers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from common import bus
from common.embedded_redis import EmbeddedRedis
from common.keyaudit import audit_keys
from gateway.limits import AudioQuota, SubjectSessions
from gateway.sessions import SessionConfig, SessionStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def private_redis() -> AsyncIterator[aioredis.Redis]:
    """A Redis of its own: the audit counts every key, and the shared one holds other tests' keys."""
    with EmbeddedRedis() as server:
        client = aioredis.Redis.from_url(server.url)
        try:
            yield client
        finally:
            await client.aclose()


async def test_session_state_limits_and_logs_all_expire(private_redis: aioredis.Redis) -> None:
    redis_client = private_redis
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    for i in range(20):
        sid = f"s{i}"
        await store.create(sid, "g-1", SessionConfig(), owner="", secret="x")
        await store.write(sid, "g-1", {"next_seq": 2, "next_utterance": 1}, {"type": "final", "seq": 1, "text": "hi"})
        async with redis_client.pipeline(transaction=False) as pipe:  # what a worker writes
            bus.publish_result(pipe, bus.FinalResult(session_id=sid, segment_id=f"{sid}:0", utterance_index=0,
                                                     text="hi", start=0, end=1))
            await pipe.execute()
    slots = SubjectSessions(redis_client, limit=5)
    await slots.acquire("alice", "slot-1")
    await AudioQuota(redis_client, 60).charge("alice", 1.5)
    audit = await audit_keys(redis_client)
    assert audit.session_keys == 62  # 20 sessions x (state + log + results), a slot set, a quota minute
    assert audit.session_keys_without_ttl == ()
    assert 0 < audit.longest_session_ttl_seconds <= bus.RESULT_STREAM_TTL_SECONDS
    assert audit.by_prefix["session:"] == 20 and audit.by_prefix["session_log:"] == 20
    assert audit.by_prefix["result_stream:"] == 20


async def test_the_audit_catches_a_session_key_without_ttl(private_redis: aioredis.Redis) -> None:
    redis_client = private_redis
    await redis_client.hset(bus.session_key("forever"), mapping={"next_seq": 1})
    await redis_client.xadd(bus.AUDIO_JOBS, {"x": "1"})  # bounded by trimming, not a per-session key
    audit = await audit_keys(redis_client)
    assert audit.session_keys_without_ttl == (bus.session_key("forever"),)
    assert audit.other_keys_without_ttl == (bus.AUDIO_JOBS,)
    assert not audit.ok
