"""The result router: one blocking read over every held session's result stream, from each
holder's last id, so nothing written while Redis was away is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from common import bus
from common.compat import timeout as compat_timeout
from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_conn import connect
from gateway.router import ResultRouter

pytestmark = pytest.mark.integration


def final(session: str, text: str, index: int = 0) -> bus.FinalResult:
    return bus.FinalResult(session_id=session, segment_id=f"{session}:{index}", utterance_index=index,
                           text=text, start=0, end=1)


async def publish(redis: Any, result: bus.FinalResult) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        bus.publish_result(pipe, result)
        await pipe.execute()


def texts(items: list[Any]) -> list[str]:
    return [i if isinstance(i, str) else i.text for i in items]


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with compat_timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def test_routes_by_session_and_loses_nothing_while_the_connection_is_cut() -> None:
    port = free_port()
    server = EmbeddedRedis(port).start()
    redis = await connect(server.url, timeout=5)
    router = ResultRouter(redis)
    await router.start()
    got: dict[str, list[Any]] = {"a": [], "b": []}
    await router.attach("a", "conn-a", got["a"].append)
    await router.attach("b", "conn-b", got["b"].append)
    publisher = await connect(server.url, timeout=5)  # retries across the restart
    try:
        await publish(publisher, final("a", "for a"))
        await publish(publisher, final("b", "for b"))
        await publisher.xadd(bus.result_stream_key("b"), {"r": "not json"})  # dropped, no crash
        await wait_for(lambda: texts(got["a"]) == ["for a"] and texts(got["b"]) == ["for b"])
        # The router's connection is cut; a result written meanwhile is read when it is back.
        await publisher.client_kill_filter(_type="normal", skipme=True)
        await publish(publisher, final("a", "while away", 1))
        await wait_for(lambda: texts(got["a"]) == ["for a", "while away"])
        router.detach("a", "conn-a")
        await publish(publisher, final("a", "after detach", 2))
        await publish(publisher, final("b", "b again", 1))
        await wait_for(lambda: texts(got["b"]) == ["for b", "b again"])
        assert texts(got["a"]) == ["for a", "while away"]
    finally:
        await router.close()
        await publisher.aclose()
        await redis.aclose()
        server.stop()


async def test_two_holders_of_one_session_each_read_from_their_own_position(redis_server) -> None:  # type: ignore[no-untyped-def]
    redis = await connect(redis_server.url, timeout=5)
    router = ResultRouter(redis)
    await router.start()
    old: list[Any] = []
    new: list[Any] = []
    try:
        await router.attach("s", "old", old.append)
        await publish(redis, final("s", "first"))
        await wait_for(lambda: texts(old) == ["first"])
        await router.attach("s", "new", new.append)  # a resume reads the stream from its start
        await router.note("s", "takeover new")
        await publish(redis, final("s", "both", 1))
        await wait_for(lambda: texts(old) == ["first", "takeover new", "both"])
        await wait_for(lambda: texts(new) == ["first", "takeover new", "both"])
        router.detach("s", "old")
        await publish(redis, final("s", "new only", 2))
        await wait_for(lambda: texts(new)[-1] == "new only")
        assert texts(old) == ["first", "takeover new", "both"]
    finally:
        await router.close()
        await redis.aclose()


async def test_an_attach_right_after_start_is_routed(redis_server, redis_client) -> None:  # type: ignore[no-untyped-def]
    """The reader's first turn may come while a fresh client is still connecting; it must not
    die then (no result routed ever after)."""
    import redis.asyncio as aioredis

    fresh = aioredis.Redis.from_url(redis_server.url)  # no connection made yet
    router = ResultRouter(fresh)
    await router.start()
    got: list[Any] = []
    try:
        await router.attach("early", "conn", got.append)
        await publish(redis_client, final("early", "routed"))
        await wait_for(lambda: texts(got) == ["routed"])
        assert router._task is not None and not router._task.done()
    finally:
        await router.close()
        await fresh.aclose()


async def test_finished_sessions_leave_nothing_in_the_router(redis_client) -> None:  # type: ignore[no-untyped-def]
    """After many sessions come and go, the router reads only the live ones' streams."""
    router = ResultRouter(redis_client)
    await router.start()
    try:
        await router.attach("keeper", "k", lambda r: None)
        for i in range(200):
            await router.attach(f"s{i}", "h", lambda r: None)
            router.detach(f"s{i}", "h")
        assert list(router._sessions) == ["keeper"] and list(router._sessions["keeper"]) == ["k"]
    finally:
        await router.close()
