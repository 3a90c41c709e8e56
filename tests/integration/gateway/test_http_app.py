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
            # The page sets its own CSP and Cache-Control (gateway/routes/page.py); the rest stay.
            for name, value in SECURITY_HEADERS.items():
                if name not in ("Content-Security-Policy", "Cache-Control"):
                    assert r.headers[name] == value
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
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
        # The client offered permessage-deflate (websockets does by default); the gateway declines.
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


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


async def test_limits_count_the_forwarded_address_only_behind_a_trusted_proxy(
    make_gateway: Any, idle_redis: Any
) -> None:
    """With TRUSTED_PROXIES naming the peer (here 127.0.0.1, as HAProxy would be), each
    X-Forwarded-For client has its own allowance; from an untrusted peer the header changes
    nothing, so a client cannot dodge its limit by inventing addresses."""
    trusted = await make_gateway(redis_url=idle_redis.url, http_requests_per_ip_per_minute=2,
                                 trusted_proxies="127.0.0.1")
    untrusted = await make_gateway(redis_url=idle_redis.url, http_requests_per_ip_per_minute=2)

    async def statuses(port: int) -> list[int]:
        found = []
        async with aiohttp.ClientSession() as http:
            for client in ("198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.3"):
                async with http.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": client}) as r:
                    found.append(r.status)
        return found

    assert await statuses(trusted.port) == [200, 200, 200, 200]
    assert await statuses(untrusted.port) == [200, 200, 429, 429]
