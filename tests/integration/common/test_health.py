"""The health/metrics HTTP server every service mounts."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from common.health import HealthServer, HealthState

pytestmark = pytest.mark.integration


async def test_health_ready_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("demo_things_total", "things", registry=registry).inc(3)
    ready = {"model": False}

    async def model_check() -> tuple[bool, str]:
        return ready["model"], "loaded" if ready["model"] else "loading"

    state = HealthState(service="svc", instance="i1")
    state.add_check("model", model_check)
    server = HealthServer(state, "127.0.0.1", 0, registry=registry)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as r:
                body = await r.json()
                assert r.status == 200 and body["status"] == "ok"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
            async with http.get(f"{base}/ready") as r:
                assert r.status == 503
                assert (await r.json())["checks"]["model"] == {"ok": False, "detail": "loading"}
            ready["model"] = True
            async with http.get(f"{base}/ready") as r:
                assert r.status == 200
            state.set_degraded("translation", "no model offline")
            async with http.get(f"{base}/health") as r:
                body = await r.json()
                assert body["status"] == "degraded"
                assert body["reasons"] == {"translation": "no model offline"}
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                assert "demo_things_total 3.0" in text
    finally:
        await server.stop()
        await server.stop()
