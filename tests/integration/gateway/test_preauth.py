"""Before and at the start of a session on the real gateway: connections waiting for their auth
message are bounded per IP (a slot comes back when such a connection ends), and deep JSON is
bad input, not a crash."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from speech_client import Auth, Error, ErrorCode, Ping, Pong, Ready, parse_server_message

pytestmark = pytest.mark.integration

SECRET = "preauth-limit-test-" + "s" * 30


def token(sub: str) -> str:
    now = time.time()
    return jwt.encode({"sub": sub, "exp": int(now + 60), "iat": int(now)}, SECRET, algorithm="HS256")


async def test_connections_waiting_for_auth_are_bounded_per_ip(make_gateway: Any, idle_redis: Any) -> None:
    gw = await make_gateway(redis_url=idle_redis.url, jwt_secret=SECRET, unauthenticated_connections_per_ip=2,
                            auth_timeout_seconds=30)
    url = f"ws://127.0.0.1:{gw.port}/"
    async with contextlib.AsyncExitStack() as stack:
        waiting = [await stack.enter_async_context(connect(url)) for _ in range(2)]
        with pytest.raises(InvalidStatus) as info:
            async with connect(url):
                pass
        assert info.value.response.status_code == 429
        assert b"too_many_unauthenticated" in info.value.response.body
        # One of the two closes: its slot is free again for the next connection.
        await waiting[0].close()
        await waiting[0].wait_closed()
        for _ in range(100):  # the gateway sees the close a moment after the client
            try:
                third = await stack.enter_async_context(connect(url))
                break
            except InvalidStatus:
                await waiting[1].ping()  # a round trip, so the gateway has run its side
        else:
            raise AssertionError("the closed connection's slot never came back")
        await third.send(Auth(token=token("zoe")).to_json())
        assert isinstance(parse_server_message(await third.recv()), Ready)


DEEP = '{"type": "auth", "token": ' + "[" * 1000 + "]" * 1000 + "}"


async def test_deep_json_before_auth_is_refused_as_bad_input(make_gateway: Any, idle_redis: Any) -> None:
    """The first message nested 1000 deep: refused like a missing token (1008), not a crash
    of the connection handler (1011)."""
    gw = await make_gateway(redis_url=idle_redis.url, jwt_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{gw.port}/") as ws:
        await ws.send(DEEP)
        answer = parse_server_message(await ws.recv())
        assert isinstance(answer, Error) and answer.code == ErrorCode.TOKEN_MISSING
        await ws.wait_closed()
        assert ws.close_code == 1008


async def test_deep_json_in_a_session_is_bad_json_and_the_session_goes_on(make_gateway: Any, idle_redis: Any) -> None:
    gw = await make_gateway(redis_url=idle_redis.url)
    async with connect(f"ws://127.0.0.1:{gw.port}/") as ws:
        assert isinstance(parse_server_message(await ws.recv()), Ready)
        await ws.send(DEEP.replace('"auth", "token"', '"config", "source_language"'))
        await ws.send('{"type": "config", "x": ' + "[" * 1000 + "]" * 1000 + "}")
        await ws.send(Ping(id="after").to_json())
        answers = [parse_server_message(await ws.recv()) for _ in range(3)]
        assert [type(a) for a in answers] == [Error, Error, Pong]
        assert {a.code for a in answers if isinstance(a, Error)} <= {ErrorCode.BAD_JSON, ErrorCode.INVALID_MESSAGE}
