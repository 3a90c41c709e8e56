"""Redis memory as Prometheus gauges, read with ``INFO memory`` by a service that has Redis.

The gateway runs :func:`watch_redis_memory`, so the RedisMemoryNearLimit alert
(infra/prometheus/rules.yml) needs no redis exporter: every gateway reports the same server,
and the rule takes the max. ``maxmemory`` 0 means no limit (the gauge says 0; the rule then
never fires).
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from prometheus_client import Gauge

from common.periodic import repeat

USED_MEMORY = Gauge("redis_used_memory_bytes", "Redis used_memory (INFO memory), as seen by this service")
MAX_MEMORY = Gauge("redis_maxmemory_bytes", "Redis maxmemory (0: no limit), as seen by this service")


async def sample_redis_memory(redis: aioredis.Redis) -> tuple[int, int]:
    """Set both gauges from one ``INFO memory``; returns (used, max)."""
    info = await redis.info("memory")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    USED_MEMORY.set(used)
    MAX_MEMORY.set(limit)
    return used, limit


async def watch_redis_memory(redis: aioredis.Redis, stop: asyncio.Event, interval: float = 15.0) -> None:
    """Sample every ``interval`` seconds until ``stop`` is set (as often as Prometheus scrapes)."""
    await repeat(lambda: sample_redis_memory(redis), interval, stop, what="redis memory sample")
