"""The public port as one aiohttp app: the WebSocket and plain HTTP side by side, with the
same headers, limits and error shape on every answer (a real gateway on a free port)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from common.health import SECURITY_HEADERS

pytestmark = pytest.mark.integration


async def test_plain_get_and_websocket_share_the_port(make_gateway: Any, idle_redis: Any) -> None:
    gw = await make_gateway(redis_url=idle_redis.url)
    base = f"http://127.0.0.1:{gw.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as r:
            assert r.status == 200
            for name, value in SECURITY_HEADERS.items():
                assert r.headers[name] == value
            assert "Server" not in r.headers
        async with http.get(base + "/v1/openapi.json") as r:
            doc = await r.json()
            assert r.status == 200 and doc["openapi"].startswith("3.") and isinstance(doc["paths"], dict)
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(base + "/v1/nothing-here") as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        async with http.post(base + "/v1/openapi.json", data=b"x") as r:
            assert r.status == 405
            assert (await r.json())["error"]["code"] == "method_not_allowed"
    async with connect(f"ws://127.0.0.1:{gw.port}/") as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready"
        assert "Server" not in ws.response.headers


async def test_http_requests_are_rate_limited_per_ip(make_gateway: Any, idle_redis: Any) -> None:
    gw = await make_gateway(redis_url=idle_redis.url, http_requests_per_ip_per_minute=3)
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.get(f"http://127.0.0.1:{gw.port}/") as r:
                statuses.append(r.status)
                if r.status == 429:
                    body = await r.json()
                    assert body["error"]["code"] == "rate_limited_ip"
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.headers["X-Frame-Options"] == "DENY"
    assert statuses == [200, 200, 200, 429, 429]
