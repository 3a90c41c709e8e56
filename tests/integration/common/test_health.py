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


async def test_a_failing_check_or_provider_shows_no_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    """The exception's text goes to the log with its traceback; /ready and /health only say
    that the check failed and how (its class)."""

    async def redis_check() -> tuple[bool, str]:
        raise ConnectionError("connect to redis://:hunter2@10.1.2.3:6379 failed")

    def broken_details() -> dict[str, object]:
        raise KeyError("internal-detail-hunter2")

    state = HealthState(service="svc", instance="i1")
    state.add_check("redis", redis_check)
    state.details.append(broken_details)
    state.details.append(lambda: {"sessions": 3})
    server = HealthServer(state, "127.0.0.1", 0, registry=CollectorRegistry())
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.get(f"{base}/ready") as r:
                    text = await r.text()
                    assert r.status == 503 and "hunter2" not in text and "10.1.2.3" not in text
                    detail = (await r.json())["checks"]["redis"]["detail"]
                    assert "ConnectionError" in detail
            async with http.get(f"{base}/health") as r:
                text = await r.text()
                assert r.status == 200 and "hunter2" not in text
                assert (await r.json())["details"] == {"sessions": 3}
    finally:
        await server.stop()
    failures = [rec for rec in caplog.records if rec.name == "common.health" and "readiness check" in rec.getMessage()]
    assert len(failures) == 1, "once per distinct failure, not once per probe"
    assert failures[0].exc_info is not None and "hunter2" in str(failures[0].exc_info[1])
    assert any("details provider" in rec.getMessage() and rec.exc_info for rec in caplog.records)
