"""Authentication on the real gateway: first-message auth, refresh, expiry, limits."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = pytest.mark.integration

SECRET = "gateway-auth-test-" + "s" * 30


def token(sub: str = "alice", ttl: float = 60, **claims: Any) -> str:
    now = time.time()
    return jwt.encode({"sub": sub, "exp": int(now + ttl), "iat": int(now), **claims}, SECRET, algorithm="HS256")


def url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.port}/"


async def recv_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until_closed(ws: Any, timeout: float = 15) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed):
        while True:
            seen.append(await recv_json(ws, timeout))
    return seen


async def test_token_in_header_query_or_first_message(make_gateway: Any) -> None:
    gw = await make_gateway(jwt_secret=SECRET)
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token()}"}) as ws:
        assert (await recv_json(ws))["type"] == "ready"
    async with connect(f"{url(gw)}?token={token()}") as ws:
        assert (await recv_json(ws))["type"] == "ready"
    async with connect(url(gw)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token()}))
        assert (await recv_json(ws))["type"] == "ready"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token(ttl=-100)}"}):
            pass
    assert info.value.response.status_code == 401
    async with connect(url(gw)) as ws:  # a bad first-message token: error, then 1008
        await ws.send(json.dumps({"type": "auth", "token": "not.a.token"}))
        seen = await until_closed(ws)
        assert seen[0]["code"] == "token_invalid" and ws.close_code == 1008


async def test_unrefreshed_token_expires_and_a_refresh_extends(make_gateway: Any) -> None:
    gw = await make_gateway(jwt_secret=SECRET, token_expiry_grace_seconds=0.5, jwt_leeway_seconds=0)
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token(ttl=2)}"}) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "auth", "token": token(ttl=60)}))  # refreshed in time
        await asyncio.sleep(3.0)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"  # still open after the first token's exp
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token(ttl=1)}"}) as ws:
        await recv_json(ws)
        seen = await until_closed(ws)
        assert [m["code"] for m in seen if m["type"] == "error"] == ["token_expired"]
        assert ws.close_code == 1008 and ws.close_reason == "token_expired"


async def test_refresh_for_another_subject_is_refused(make_gateway: Any) -> None:
    gw = await make_gateway(jwt_secret=SECRET)
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token('alice')}"}) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "auth", "token": token("mallory")}))
        seen = await until_closed(ws)
        assert seen[-1]["type"] == "error" and ws.close_code == 1008


async def test_sessions_per_subject_across_gateways(make_gateway: Any) -> None:
    gw1 = await make_gateway(jwt_secret=SECRET, sessions_per_subject=1)
    gw2 = await make_gateway(jwt_secret=SECRET, sessions_per_subject=1)
    headers = {"Authorization": f"Bearer {token('carol')}"}
    async with connect(url(gw1), additional_headers=headers) as first:
        assert (await recv_json(first))["type"] == "ready"
        async with connect(url(gw2), additional_headers=headers) as second:
            seen = await until_closed(second)
            assert seen[0]["code"] == "too_many_sessions_for_subject" and second.close_code == 1008
    await asyncio.sleep(0.2)  # the first session's slot is released when it closes
    async with connect(url(gw2), additional_headers=headers) as third:
        assert (await recv_json(third))["type"] == "ready"


async def test_a_long_session_keeps_its_slot_by_renewing_it(make_gateway: Any, monkeypatch: Any) -> None:
    """A slot lives ``ttl`` seconds unless renewed; a session held for several of them still
    has its slot (its connection renews it), so a second session of the subject is refused."""
    from gateway import connection

    monkeypatch.setattr(connection, "RENEW_SECONDS", 0.1)
    gw1 = await make_gateway(jwt_secret=SECRET, sessions_per_subject=1)
    gw2 = await make_gateway(jwt_secret=SECRET, sessions_per_subject=1)
    for gw in (gw1, gw2):
        gw.ctx.subject_sessions.ttl = 0.5
    headers = {"Authorization": f"Bearer {token('erin')}"}
    async with connect(url(gw1), additional_headers=headers) as first:
        assert (await recv_json(first))["type"] == "ready"
        await asyncio.sleep(1.5)  # three slot lifetimes: the slot is kept only by renewing it
        async with connect(url(gw2), additional_headers=headers) as second:
            seen = await until_closed(second)
            assert seen[0]["code"] == "too_many_sessions_for_subject"


async def test_repeated_failures_lock_the_address_out(make_gateway: Any) -> None:
    gw = await make_gateway(jwt_secret=SECRET, auth_failures_before_lockout=2, lockout_seconds=60)
    for _ in range(2):
        with pytest.raises(InvalidStatus):
            async with connect(url(gw), additional_headers={"Authorization": "Bearer forged.token.here"}):
                pass
    with pytest.raises(InvalidStatus) as info:
        async with connect(url(gw), additional_headers={"Authorization": f"Bearer {token()}"}):
            pass
    assert info.value.response.status_code == 429
    assert b"locked_out" in info.value.response.body
