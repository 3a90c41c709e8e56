"""The shared consumer loop against a real Redis: ack after handling, reclaim, dead letters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from common.bus import DEAD_LETTERS, MalformedMessage
from common.compat import timeout as compat_timeout
from common.consumer import ConsumerOptions, Entry, StreamConsumer

pytestmark = pytest.mark.integration

STREAM, GROUP = "jobs_test", "workers_test"


def decode(fields: dict[Any, Any]) -> str:
    value = fields.get(b"n")
    if value is None:
        raise MalformedMessage("no n field")
    return value.decode()


def options(consumer: str, **over: Any) -> ConsumerOptions:
    base: dict[str, Any] = dict(stream=STREAM, group=GROUP, consumer=consumer, batch_size=4,
                                batch_timeout_ms=20, block_ms=50, claim_idle_ms=200, max_deliveries=2)
    base.update(over)
    return ConsumerOptions(**base)


async def run_until(consumer: StreamConsumer[str], cond: Any, timeout: float = 10.0) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        async with compat_timeout(timeout):
            while not cond():
                await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 5)


async def test_batches_are_handled_acked_and_deleted(redis_client: aioredis.Redis) -> None:
    seen: list[list[str]] = []

    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        seen.append([e.job for e in entries])
        return [e.id for e in entries]

    consumer = StreamConsumer(redis_client, options("c1"), decode, handler)
    await consumer.ensure_group()
    for i in range(6):
        await redis_client.xadd(STREAM, {"n": str(i)})
    await run_until(consumer, lambda: sum(map(len, seen)) == 6)
    assert sorted(x for batch in seen for x in batch) == [str(i) for i in range(6)]
    assert max(map(len, seen)) > 1  # batched
    assert await redis_client.xlen(STREAM) == 0  # XDEL after XACK
    assert (await redis_client.xpending(STREAM, GROUP))["pending"] == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(redis_client: aioredis.Redis) -> None:
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis_client.xadd(STREAM, {"n": "lost"})
    # "dead" reads the entry and never acknowledges it (as a SIGKILLed worker would).
    await redis_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=1)
    done: list[str] = []

    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        done.extend(e.job for e in entries)
        return [e.id for e in entries]

    consumer = StreamConsumer(redis_client, options("alive", claim_interval_s=0.1), decode, handler)
    await run_until(consumer, lambda: done == ["lost"])
    assert consumer.stats.reclaimed == 1
    assert (await redis_client.xpending(STREAM, GROUP))["pending"] == 0


async def test_poison_entry_goes_to_dead_letters(redis_client: aioredis.Redis) -> None:
    good: list[str] = []

    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        for e in entries:
            if e.job == "poison":
                raise RuntimeError("this entry always crashes the handler")
        good.extend(e.job for e in entries)
        return [e.id for e in entries]

    consumer = StreamConsumer(redis_client, options("c", claim_interval_s=0.1), decode, handler)
    await consumer.ensure_group()
    await redis_client.xadd(STREAM, {"n": "ok-1"})
    await redis_client.xadd(STREAM, {"n": "poison"})
    await redis_client.xadd(STREAM, {"n": "ok-2"})
    await run_until(consumer, lambda: consumer.stats.dead_lettered == 1)
    assert sorted(good) == ["ok-1", "ok-2"]  # the batch survived its bad entry
    letters = await redis_client.xrange(DEAD_LETTERS)
    assert len(letters) == 1
    fields = letters[0][1]
    assert fields[b"field:n"] == b"poison"
    assert b"delivered" in fields[b"reason"]
    assert await redis_client.xlen(STREAM) == 0


async def test_malformed_entry_is_dead_lettered_at_once(redis_client: aioredis.Redis) -> None:
    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        return [e.id for e in entries]

    consumer = StreamConsumer(redis_client, options("c"), decode, handler)
    await consumer.ensure_group()
    await redis_client.xadd(STREAM, {"garbage": "1"})
    await run_until(consumer, lambda: consumer.stats.dead_lettered == 1)
    letters = await redis_client.xrange(DEAD_LETTERS)
    assert b"malformed: no n field" in letters[0][1][b"reason"]


async def test_restarted_consumer_first_finishes_its_own_pending(redis_client: aioredis.Redis) -> None:
    await redis_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await redis_client.xadd(STREAM, {"n": "mine"})
    await redis_client.xreadgroup(GROUP, "host-0", {STREAM: ">"}, count=1)
    done: list[str] = []

    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        done.extend(e.job for e in entries)
        return [e.id for e in entries]

    # Same stable name, long claim idle: only its own pending read can find the entry.
    consumer = StreamConsumer(redis_client, options("host-0", claim_idle_ms=60000), decode, handler)
    await run_until(consumer, lambda: done == ["mine"])


async def test_dead_letters_keep_metadata_not_audio_and_expire(redis_client: aioredis.Redis) -> None:
    """An audio job that cannot be decoded: its metadata stays for an operator (session id as a
    digest), the speaker's audio does not, and dead_letters has a TTL (and drops older entries)."""
    from common.bus import DEAD_LETTERS_TTL_SECONDS, session_digest

    async def handler(entries: list[Entry[str]]) -> Sequence[str]:
        return [e.id for e in entries]

    stale_ms = int((time.time() - DEAD_LETTERS_TTL_SECONDS - 3600) * 1000)
    await redis_client.xadd(DEAD_LETTERS, {"reason": "ancient"}, id=f"{stale_ms}-0")
    consumer = StreamConsumer(redis_client, options("c"), decode, handler)
    await consumer.ensure_group()
    audio = b"\x01\x02" * 8000
    await redis_client.xadd(STREAM, {"meta": b'{"session_id": "s1"}', "audio": audio})
    await run_until(consumer, lambda: consumer.stats.dead_lettered == 1)
    letters = await redis_client.xrange(DEAD_LETTERS)
    assert len(letters) == 1 and letters[0][1][b"reason"] != b"ancient", "the stale entry is trimmed"
    fields = letters[0][1]
    # The metadata stays, with the session id replaced by its digest (no resume from a dead letter).
    assert fields[b"field:meta"] == f'{{"session_id": "{session_digest("s1")}"}}'.encode()
    assert b"field:audio" not in fields and fields[b"dropped:audio"] == str(len(audio)).encode()
    assert not any(audio[:64] in value for value in fields.values())
    ttl = await redis_client.ttl(DEAD_LETTERS)
    assert 0 < ttl <= DEAD_LETTERS_TTL_SECONDS
