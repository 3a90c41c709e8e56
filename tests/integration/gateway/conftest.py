"""Fixtures for gateway integration tests: a private Redis, a real STT worker process with
tiny.en on it, and gateways started in-process on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.embedded_redis import EmbeddedRedis, free_port
from common.settings import GatewaySettings
from gateway.service import GatewayService

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def gw_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="module")
def stt_worker(gw_redis: EmbeddedRedis) -> Iterator[subprocess.Popen[bytes]]:
    """One real STT worker (tiny.en, beam 1) consuming the module's Redis."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": gw_redis.url, "MODEL_SIZE": "tiny.en", "HEALTH_PORT": str(port),
           "BEAM_SIZE": "1", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "stt_worker"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, "stt worker exited"
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "stt worker not ready"
        time.sleep(0.2)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def idle_redis() -> Iterator[EmbeddedRedis]:
    """A Redis no worker reads: jobs stay in audio_jobs to be inspected."""
    with EmbeddedRedis() as server:
        yield server


GatewayFactory = Callable[..., Awaitable[GatewayService]]


@pytest.fixture
async def make_gateway(gw_redis: EmbeddedRedis) -> AsyncIterator[GatewayFactory]:
    """Start gateways in this event loop; each on free ports; all stopped at the end."""
    started: list[GatewayService] = []

    async def make(redis_url: str | None = None, **overrides: Any) -> GatewayService:
        options: dict[str, Any] = {"silence_threshold_seconds": 0.8, "pre_speech_buffer_seconds": 0.3, **overrides}
        settings = GatewaySettings(
            redis_url=redis_url or gw_redis.url,  # type: ignore[arg-type]
            gateway_port=0,
            health_port=0,
            **options,
        )
        service = GatewayService(settings)
        await service.startup()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.shutdown()
