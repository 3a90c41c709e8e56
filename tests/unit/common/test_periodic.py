"""Loops that must end when told, whatever a Redis call in them raises (common/periodic.py).

The Redis client here is a stand-in at the boundary: the test is about the loop, and the
case it needs (a cancellation that comes back out of redis-py as a connection error, as a
CI teardown showed) cannot be produced on demand with a real server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from common.heartbeat import Heartbeat
from common.periodic import repeat


class CancelAsConnectionError:
    """A client whose commands hang, and turn a cancellation into a connection error."""

    def __init__(self) -> None:
        self.calls = 0

    async def set(self, *_: Any, **__: Any) -> None:
        self.calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RedisConnectionError("Error connecting: connection refused") from None

    async def delete(self, *_: Any) -> int:
        raise RedisConnectionError("connection refused")


async def test_heartbeat_stops_though_its_command_swallows_the_cancellation() -> None:
    redis = CancelAsConnectionError()
    beat = Heartbeat(redis, "gateway", "t", ttl=0.3)  # type: ignore[arg-type]
    beat.start()
    while redis.calls == 0:
        await asyncio.sleep(0.01)
    task = beat._task
    await asyncio.wait_for(beat.stop(), 10)  # was: waited for ever (the bound only ends a hang)
    assert task is not None and task.done()


async def test_repeat_runs_until_its_event_and_survives_redis_errors() -> None:
    stop = asyncio.Event()
    calls: list[float] = []

    async def step() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RedisConnectionError("refused")
        if len(calls) == 4:
            stop.set()

    await asyncio.wait_for(repeat(step, 0.01, stop, what="test"), 5)
    assert len(calls) == 4
