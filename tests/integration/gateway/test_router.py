"""The result router: one pub/sub connection for all sessions, and it survives a Redis restart."""

from __future__ import annotations

import asyncio

import pytest

from common import bus
from common.compat import timeout as compat_timeout
from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_conn import connect
from gateway.router import ResultRouter

pytestmark = pytest.mark.integration


def final(session: str, text: str) -> str:
    return bus.encode_result(
        bus.FinalResult(session_id=session, segment_id=f"{session}:0", utterance_index=0, text=text, start=0, end=1)
    )


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with compat_timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def test_routes_by_session_and_resubscribes_after_redis_restart() -> None:
    port = free_port()
    server = EmbeddedRedis(port).start()
    redis = await connect(server.url, timeout=5)
    router = ResultRouter(redis)
    await router.start()
    got: dict[str, list[str]] = {"a": [], "b": []}
    await router.subscribe("a", "conn-a", lambda r: got["a"].append(r.text))  # type: ignore[union-attr]
    await router.subscribe("b", "conn-b", lambda r: got["b"].append(r.text))  # type: ignore[union-attr]
    publisher = await connect(server.url, timeout=5)  # retries across the restart
    try:
        await asyncio.sleep(0.1)
        await publisher.publish(bus.results_channel("a"), final("a", "for a"))
        await publisher.publish(bus.results_channel("b"), final("b", "for b"))
        await publisher.publish(bus.results_channel("b"), "not json")  # dropped, no crash
        await wait_for(lambda: got == {"a": ["for a"], "b": ["for b"]})
        server.stop()
        await asyncio.sleep(0.5)
        server = EmbeddedRedis(port).start()

        async def delivered() -> None:
            while "again" not in got["a"]:
                await publisher.publish(bus.results_channel("a"), final("a", "again"))
                await asyncio.sleep(0.2)

        await asyncio.wait_for(delivered(), 20)
        await router.unsubscribe("a", "conn-a")
        await publisher.publish(bus.results_channel("a"), final("a", "after unsubscribe"))
        await asyncio.sleep(0.3)
        assert "after unsubscribe" not in got["a"]
    finally:
        await router.close()
        await publisher.aclose()
        await redis.aclose()
        server.stop()


async def test_two_holders_of_one_session_each_get_results_until_they_let_go(redis_server) -> None:  # type: ignore[no-untyped-def]
    redis = await connect(redis_server.url, timeout=5)
    router = ResultRouter(redis)
    await router.start()
    old: list[str] = []
    new: list[str] = []
    notes: list[str] = []
    await router.subscribe("s", "old", lambda r: old.append(r.text), notes.append)  # type: ignore[union-attr]
    await router.subscribe("s", "new", lambda r: new.append(r.text))  # type: ignore[union-attr]
    try:
        assert router.local_holders("s") == 2
        assert await router.publish_control("s", "takeover new") == 1  # one gateway subscribed
        await redis.publish(bus.results_channel("s"), final("s", "both"))
        await wait_for(lambda: old == ["both"] and new == ["both"] and notes == ["takeover new"])
        await router.unsubscribe("s", "old")  # the old holder lets go: the channel stays
        await redis.publish(bus.results_channel("s"), final("s", "new only"))
        await wait_for(lambda: new == ["both", "new only"])
        assert old == ["both"]
    finally:
        await router.close()
        await redis.aclose()


async def test_a_subscribe_right_after_start_is_routed(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    """The reader's first turn may come while the first SUBSCRIBE is on its way (a fresh client
    still connecting); it used to read a pub/sub without a connection then, and die (no result
    routed ever after)."""
    import redis.asyncio as aioredis

    fresh = aioredis.Redis.from_url(redis_server.url)  # no connection made yet
    router = ResultRouter(fresh)
    await router.start()
    got: list[str] = []
    try:
        await router.subscribe("early", "conn", lambda r: got.append(r.text))  # type: ignore[union-attr]
        await redis_client.publish(bus.results_channel("early"), final("early", "routed"))
        await wait_for(lambda: got == ["routed"])
        assert router._task is not None and not router._task.done()
    finally:
        await router.close()
        await fresh.aclose()


async def test_finished_sessions_leave_no_channel_in_the_pubsub(redis_client) -> None:  # type: ignore[no-untyped-def]
    """After many sessions come and go, the shared pub/sub holds only the live ones."""
    router = ResultRouter(redis_client)
    await router.start()
    try:
        await router.subscribe("keeper", "k", lambda r: None)
        for i in range(200):
            await router.subscribe(f"s{i}", "h", lambda r: None)
            await router.unsubscribe(f"s{i}", "h")
        pubsub = router._pubsub
        assert pubsub is not None
        await wait_for(lambda: len(pubsub.channels) == 1 and not pubsub.pending_unsubscribe_channels)
        assert router.local_holders("keeper") == 1 and len(router._holders) == 1
    finally:
        await router.close()
