"""RSS on /health, and the opt-in /debug/memory (MEMORY_DEBUG): top growing allocation sites."""

from __future__ import annotations

import tracemalloc

import aiohttp
import pytest

from common.health import HealthServer, HealthState

pytestmark = pytest.mark.integration

_kept: list[bytes] = []


def grow() -> None:
    _kept.extend(bytes(1000) + bytes([i % 256]) for i in range(2000))  # ~2 MB kept at this line


async def test_health_reports_rss_and_memory_debug_is_off_by_default() -> None:
    server = HealthServer(HealthState(service="svc", instance="i"), "127.0.0.1", 0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/health") as r:
                assert (await r.json())["rss_bytes"] > 10 * 2**20
            async with http.get(f"http://127.0.0.1:{server.port}/debug/memory") as r:
                assert r.status == 404
        assert not tracemalloc.is_tracing()
    finally:
        await server.stop()


async def test_debug_memory_names_the_site_that_grew_and_needs_the_metrics_token() -> None:
    server = HealthServer(HealthState(service="svc", instance="i"), "127.0.0.1", 0,
                          metrics_token="ops-token-1234", memory_debug=True)
    await server.start()
    base = f"http://127.0.0.1:{server.port}/debug/memory"
    auth = {"Authorization": "Bearer ops-token-1234"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as r:
                assert r.status == 401
            async with http.get(base, headers=auth) as r:
                assert r.status == 200  # the baseline
            grow()
            async with http.get(f"{base}?top=5&trim=1", headers=auth) as r:
                body = await r.json()
        top = body["since_last"][0]
        assert __file__ in top["site"] and top["size_diff"] > 1_500_000, body["since_last"]
        assert body["traced_bytes"] > 1_500_000
        before, after = body["malloc_trim_rss_bytes"]
        assert after <= before
    finally:
        await server.stop()
        _kept.clear()
    assert not tracemalloc.is_tracing()  # stopped with the server
