"""One worker's consumer over several shards of a job stream (cluster mode).

In a Redis Cluster each shard ``audio_jobs:{N}`` lives on the master that owns its slot, so
one ``XREADGROUP`` naming several shards is refused (CROSSSLOT). Instead each shard gets its
own :class:`~common.consumer.StreamConsumer` loop, blocking on its own node, and all of them
share one lock: a batch runs through the handler (one inference) only when no other shard's
batch is running, so a worker never runs two models' worth of work at once. A loop that has
read a batch while another runs waits with it, so a busy worker holds at most one batch per
shard; an idle worker, blocked on every shard, takes new jobs as soon as they land.

With a single shard (single-node mode, the seed's ``audio_jobs``) this is exactly one
``StreamConsumer`` and no lock is taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Generic, TypeVar

import redis.asyncio as aioredis

from common.consumer import ConsumerOptions, ConsumerStats, Decoder, Handler, StreamConsumer

T = TypeVar("T")


class ShardedConsumer(Generic[T]):
    """``StreamConsumer``'s interface over ``streams`` (one group, one consumer name)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        options: ConsumerOptions,
        streams: Sequence[str],
        decode: Decoder[T],
        handler: Handler[T],
    ) -> None:
        if not streams:
            raise ValueError("a consumer needs at least one stream")
        self.options = options
        self.streams = list(streams)
        turn = asyncio.Lock() if len(self.streams) > 1 else None
        self.consumers = [
            StreamConsumer(redis, replace(options, stream=stream), decode, handler, turn=turn)
            for stream in self.streams
        ]

    @property
    def stats(self) -> ConsumerStats:
        """Counters summed over the shards."""
        parts = [c.stats for c in self.consumers]
        times = [p.last_batch_at for p in parts if p.last_batch_at is not None]
        return ConsumerStats(
            handled=sum(p.handled for p in parts),
            failed=sum(p.failed for p in parts),
            reclaimed=sum(p.reclaimed for p in parts),
            dead_lettered=sum(p.dead_lettered for p in parts),
            last_batch_at=max(times) if times else None,
        )

    async def ensure_group(self) -> None:
        for consumer in self.consumers:
            await consumer.ensure_group()

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()

    async def run(self) -> None:
        """Every shard's loop; if one fails the others are stopped and the error raised."""
        tasks = [asyncio.create_task(c.run(), name=f"consumer-{c.options.stream}") for c in self.consumers]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self.stop()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    task.result()
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def refresh_gauges(self) -> tuple[int, int]:
        """Queue depth and pending entries summed over the shards (each shard's gauge is set)."""
        depth = pending = 0
        for consumer in self.consumers:
            d, p = await consumer.refresh_gauges()
            depth += d
            pending += p
        return depth, pending

    async def depth(self) -> int:
        """Entries in every shard (queued and in flight): XLEN summed."""
        lengths = await asyncio.gather(*(c.redis.xlen(s) for c, s in zip(self.consumers, self.streams, strict=True)))
        return sum(int(n) for n in lengths)
