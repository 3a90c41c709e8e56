"""Connections waiting for their auth message are bounded per IP on the real gateway, and a
slot comes back when such a connection ends (auth on, tokens only in the first message)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from speech_client import Auth, Ready, parse_server_message

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
