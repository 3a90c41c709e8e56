"""Heartbeat keys: ``heartbeat:{service}:{name}`` with a TTL, refreshed while a service lives.

Health checks and the demo client's worker distribution read them; a key that expires means
its instance is gone. The value is a small JSON document with the pid and counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from common.bus import heartbeat_key, heartbeat_pattern
from common.periodic import repeat, stop_task
from common.redis_conn import last_write

log = logging.getLogger(__name__)


class Heartbeat:
    """Writes the key every ttl/3 seconds until stopped; deletes it on ``stop``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        service: str,
        name: str,
        ttl: float,
        info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.key = heartbeat_key(service, name)
        self._redis = redis
        self._ttl_ms = max(1000, int(ttl * 1000))
        self._info = info or dict
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.last_ok: float | None = None

    async def beat(self) -> None:
        value = {"pid": os.getpid(), "time": time.time(), **self._info()}
        await self._redis.set(self.key, json.dumps(value), px=self._ttl_ms)
        self.last_ok = time.monotonic()

    def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            loop = repeat(self.beat, self._ttl_ms / 3000, self._stop, what="heartbeat", level=logging.WARNING)
            self._task = asyncio.create_task(loop, name=f"heartbeat-{self.key}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await stop_task(task, self._stop, what=f"heartbeat {self.key}")
        if not await last_write(self._redis.delete(self.key)):
            log.warning("could not delete heartbeat %s; it expires by its TTL", self.key)


async def live_instances(redis: aioredis.Redis, service: str = "*") -> dict[str, dict[str, Any]]:
    """Every live heartbeat of ``service`` (or all services): key -> its JSON value."""
    found: dict[str, dict[str, Any]] = {}
    async for key in redis.scan_iter(match=heartbeat_pattern(service), count=100):
        raw = await redis.get(key)
        if raw is None:
            continue
        name = key.decode() if isinstance(key, bytes) else str(key)
        try:
            found[name] = json.loads(raw)
        except ValueError:
            found[name] = {}
    return found
