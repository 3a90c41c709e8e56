"""The limits that hold across gateways, against a real Redis: sessions per subject and seconds
of audio per subject per minute."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.limits import AudioMeter, AudioQuota, SubjectSessions, audio_key, sessions_key

pytestmark = pytest.mark.integration


async def test_sessions_per_subject_hold_across_instances(redis_client: aioredis.Redis) -> None:
    # Two limiters on the same Redis stand for two gateways.
    a, b = SubjectSessions(redis_client, limit=2), SubjectSessions(redis_client, limit=2)
    assert await a.acquire("alice", "s1") is None
    assert await b.acquire("alice", "s2") is None
    refusal = await a.acquire("alice", "s3")
    assert refusal is not None and refusal.code == "too_many_sessions_for_subject"
    assert await b.acquire("bob", "s4") is None  # other subjects are unaffected
    assert await a.acquire("alice", "s1") is None  # re-acquiring one's own slot is fine
    await b.release("alice", "s2")
    assert await a.acquire("alice", "s3") is None
    assert await a.count("alice") == 2
    assert 0 < await redis_client.ttl(sessions_key("alice")) <= 61


async def test_concurrent_acquires_never_pass_the_limit(redis_client: aioredis.Redis) -> None:
    limiters = [SubjectSessions(redis_client, limit=3) for _ in range(4)]
    results = await asyncio.gather(*(limiters[i % 4].acquire("carol", f"s{i}") for i in range(20)))
    assert sum(r is None for r in results) == 3
    assert await limiters[0].count("carol") == 3


async def test_slots_of_a_dead_gateway_expire_and_renew_keeps_them(redis_client: aioredis.Redis) -> None:
    short = SubjectSessions(redis_client, limit=1, ttl_seconds=0.3)
    assert await short.acquire("dave", "held") is None
    assert await short.renew("dave", "held")
    assert (await short.acquire("dave", "other")) is not None
    await asyncio.sleep(0.4)  # "held" was not renewed: its gateway is gone
    assert await short.acquire("dave", "other") is None
    assert not await short.renew("dave", "held")  # its slot is gone; it must acquire again


async def test_audio_quota_per_subject_per_minute(redis_client: aioredis.Redis) -> None:
    now = [600.0]  # the start of minute 10
    quota = AudioQuota(redis_client, 10.0, clock=lambda: now[0])
    other_gateway = AudioQuota(redis_client, 10.0, clock=lambda: now[0])
    assert (await quota.charge("erin", 6.0)).accepted
    charge = await other_gateway.charge("erin", 3.0)
    assert charge.accepted and charge.used_seconds == pytest.approx(9.0)
    refused = await quota.charge("erin", 2.0)
    assert not refused.accepted and refused.used_seconds == pytest.approx(9.0)
    assert refused.refusal is not None and refused.refusal.code == "audio_quota_exceeded"
    now[0] = 645.0
    late = await quota.charge("erin", 2.0)
    assert late.refusal is not None and late.refusal.retry_after == pytest.approx(15.0)
    assert (await quota.charge("frank", 2.0)).accepted
    assert 0 < await redis_client.ttl(audio_key("erin", 10)) <= 120
    now[0] = 660.0  # a new minute, a new allowance
    assert (await quota.charge("erin", 9.5)).accepted


async def test_meter_batches_frames_and_blocks_until_the_next_minute(redis_client: aioredis.Redis) -> None:
    now = [1200.0]
    quota = AudioQuota(redis_client, 3.0, clock=lambda: now[0])
    meter = AudioMeter(quota, "gina", flush_seconds=1.0, clock=lambda: now[0])
    calls = 0
    original = quota.charge

    async def counting(subject: str, seconds: float) -> object:
        nonlocal calls
        calls += 1
        return await original(subject, seconds)

    quota.charge = counting  # type: ignore[method-assign,assignment]
    results = [await meter.add(0.1) for _ in range(30)]  # 3 s of 100 ms frames
    assert all(r is None for r in results) and calls == 3
    refusal = await meter.add(1.0)
    assert refusal is not None and refusal.code == "audio_quota_exceeded"
    assert await meter.add(0.1) is refusal and calls == 4  # blocked without asking Redis
    now[0] = 1260.0
    assert await meter.add(0.5) is None
    await meter.flush()
    raw = await redis_client.get(audio_key("gina", 21))
    assert raw is not None and float(raw) == pytest.approx(0.5)


async def test_redis_down_fails_open() -> None:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    try:
        assert await SubjectSessions(dead, limit=1).acquire("h", "s") is None
        assert (await AudioQuota(dead, 1.0).charge("h", 5.0)).accepted
    finally:
        await dead.aclose()
