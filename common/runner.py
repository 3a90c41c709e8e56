"""``speech-pipeline up``: the whole stack on one machine, as supervised child processes.

Starts Redis (the embedded server on a free loopback port unless a URL is given), one
gateway, N STT workers, M translation workers and the transcript store, each as
``python -m <service>`` with its own ports in its environment. With ``redis_cluster`` and no
URL, Redis is a local 3-master cluster with one replica each
(:class:`~common.embedded_cluster.EmbeddedCluster`) and every service runs with
``REDIS_CLUSTER=true``. Waits for every ``/ready``, prints where to connect, restarts a
child that dies (exponential backoff, a log line each time), and on SIGINT/SIGTERM stops the
gateway first (clients are told), then the workers, then the transcript store (which
commits what they published), then Redis: graceful first, SIGKILL for
whatever is still running after the shutdown budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp

from common import parent_death
from common.embedded_cluster import EmbeddedCluster
from common.embedded_redis import EmbeddedRedis, free_port

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF = 30.0
DEMO_CLIENT = Path(__file__).resolve().parent.parent / "demos" / "demo_client.py"


@dataclass
class ChildSpec:
    name: str
    module: str
    health_port: int
    env: dict[str, str] = field(default_factory=dict)
    order: int = 0  # lower stops first


@dataclass
class Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass(frozen=True)
class StackOptions:
    stt_workers: int = 1
    translation_workers: int = 1
    redis_url: str | None = None
    redis_cluster: bool = False
    host: str = "127.0.0.1"
    gateway_port: int = 5026
    gateway_health_port: int = 8080
    stt_health_port: int = 8081
    translation_health_port: int = 8082
    store_health_port: int = 8083
    ready_timeout: float = 180.0
    stop_timeout: float = 12.0


def _port(preferred: int, index: int) -> int:
    """The preferred port for the first instance (0 = any), free ports for the others."""
    return preferred if index == 0 and preferred else free_port()


def plan(options: StackOptions, redis_url: str) -> list[ChildSpec]:
    common = {"REDIS_URL": redis_url, "HOST": options.host}
    if options.redis_cluster:
        common["REDIS_CLUSTER"] = "true"
    specs = [
        ChildSpec(
            "gateway",
            "gateway",
            _port(options.gateway_health_port, 0),
            {**common, "GATEWAY_PORT": str(options.gateway_port or free_port())},
            order=0,
        )
    ]
    for i in range(options.stt_workers):
        port = _port(options.stt_health_port, i)
        specs.append(ChildSpec(f"stt_worker-{i}", "stt_worker", port, {**common, "WORKER_INDEX": str(i)}, 1))
    for i in range(options.translation_workers):
        port = _port(options.translation_health_port, i)
        specs.append(
            ChildSpec(f"translation_worker-{i}", "translation_worker", port, {**common, "WORKER_INDEX": str(i)}, 1)
        )
    # The transcript store (SQLite in DATA_DIR unless DATABASE_URL says otherwise); it stops
    # last, after the workers, so it commits what they published while stopping.
    specs.append(ChildSpec("transcript_store", "transcript_store", _port(options.store_health_port, 0), common, 2))
    return specs


class Supervisor:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.redis: EmbeddedRedis | EmbeddedCluster | None = None
        self.redis_url = options.redis_url or ""
        self.children: list[Child] = []
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self.states: dict[str, str] = {}

    @property
    def gateway_port(self) -> int:
        return int(self.children[0].spec.env["GATEWAY_PORT"])

    async def start(self) -> None:
        # The embedded servers start on this (the main) thread, blocking the loop a moment before
        # anything else runs on it: so they are asked to end with this process if it is killed,
        # which a server forked from a pool thread cannot be (common/parent_death.py).
        if not self.redis_url and self.options.redis_cluster:
            cluster = EmbeddedCluster(masters=3, replicas=1).start()
            self.redis, self.redis_url = cluster, cluster.url
            log.info("embedded redis cluster on 127.0.0.1 ports %s", cluster.ports)
        elif not self.redis_url:
            server = EmbeddedRedis().start()
            self.redis, self.redis_url = server, server.url
            log.info("embedded redis on 127.0.0.1:%d", server.port)
        for spec in plan(self.options, self.redis_url):
            child = Child(spec)
            self.children.append(child)
            await self._spawn(child)
        for child in self.children:
            self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}"))

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        env = {**os.environ, **spec.env, "HEALTH_PORT": str(spec.health_port)}
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", spec.module, env=env, start_new_session=True,
            preexec_fn=parent_death.preexec(),  # SIGTERM if the supervisor is killed
        )
        child.started_at = time.monotonic()
        log.info("started %s (pid %d, health port %d)", spec.name, child.proc.pid, spec.health_port)

    async def _watch(self, child: Child) -> None:
        backoff = 1.0
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - child.started_at
            if lived > 60:
                backoff = 1.0  # it ran fine for a while: this is a new failure, not a crash loop
            child.restarts += 1
            log.error(
                "%s (pid %d) exited with %s after %.0fs; restart %d in %.0fs",
                child.spec.name, child.proc.pid, code, lived, child.restarts, backoff,
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), backoff)
                return
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, MAX_BACKOFF)
            await self._spawn(child)

    async def wait_ready(self) -> float:
        """Poll every child's /ready until all answer 200; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + self.options.ready_timeout
        pending = {c.spec.name: c for c in self.children}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {self.options.ready_timeout:.0f}s: {', '.join(pending)}")
                for name, child in list(pending.items()):
                    state = await _probe(http, child.spec.health_port)
                    if state is not None:
                        del pending[name]
                        self.states[name] = state
                        log.info("%s %s", name, state)
                await asyncio.sleep(0.2)
        return time.monotonic() - started

    def summary(self) -> str:
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        lines = [f"speech pipeline up: connect to ws://{host}:{self.gateway_port}/"]
        for child in self.children:
            pid = child.proc.pid if child.proc else "-"
            state = self.states.get(child.spec.name, "")
            lines.append(
                f"  {child.spec.name:<22} pid {pid:<8} http://{host}:{child.spec.health_port}/health  {state}"
            )
        kind = ("embedded " if self.redis else "") + ("cluster " if self.options.redis_cluster else "")
        lines.append(f"  redis                  {kind}{_redact(self.redis_url)}")
        if isinstance(self.redis, EmbeddedCluster):
            lines.append(f"  redis cluster nodes    127.0.0.1 ports {' '.join(map(str, self.redis.ports))}")
        return "\n".join(lines)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._watchers:
            task.cancel()
        for order in sorted({c.spec.order for c in self.children}):
            group = [c for c in self.children if c.spec.order == order and c.proc and c.proc.returncode is None]
            for child in group:
                assert child.proc is not None
                child.proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*(self._reap(c) for c in group))
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
            self.redis = None

    async def _reap(self, child: Child) -> None:
        assert child.proc is not None
        try:
            await asyncio.wait_for(child.proc.wait(), self.options.stop_timeout / 2)
        except asyncio.TimeoutError:
            log.warning("%s did not stop in time; killing pid %d", child.spec.name, child.proc.pid)
            child.proc.kill()
            await child.proc.wait()


async def _probe(http: aiohttp.ClientSession, port: int) -> str | None:
    """``ready``; ``degraded: why`` for a service that is up but says it cannot fully serve
    (a translation worker without a model); None while it is still starting."""
    base = f"http://127.0.0.1:{port}"
    try:
        async with http.get(f"{base}/ready") as response:
            if response.status == 200:
                return "ready"
        async with http.get(f"{base}/health") as response:
            body = await response.json()
            if body.get("status") == "degraded":
                reasons = "; ".join(f"{v}" for v in body.get("reasons", {}).values())
                return f"degraded: {reasons}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        pass
    return None


def _redact(url: str) -> str:
    from common.redis_conn import redact_url

    return redact_url(url)


async def _until_stopped(supervisor: Supervisor, work: Awaitable[T]) -> T | None:
    """``work``'s result, or None once a stop (SIGINT/SIGTERM) is asked first."""
    task = asyncio.ensure_future(work)
    stop = asyncio.create_task(supervisor.wait_stopped())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _with_stack(options: StackOptions, body: Callable[[Supervisor], Awaitable[int]]) -> int:
    """Start the stack, wait until every service is up, run ``body`` while it is, and stop
    everything on the way out (also on SIGINT/SIGTERM at any point). Returns ``body``'s code."""
    supervisor = Supervisor(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, supervisor.request_stop)
    try:
        started = time.monotonic()
        await supervisor.start()
        if await _until_stopped(supervisor, supervisor.wait_ready()) is None:
            return 0
        print(supervisor.summary(), flush=True)
        print(f"ready in {time.monotonic() - started:.1f}s; Ctrl+C stops everything", flush=True)
        return await body(supervisor)
    except TimeoutError as exc:  # not ready in time
        log.error("%s", exc)
        return 1
    finally:
        stopped = time.monotonic()
        await supervisor.stop()
        log.info("stack stopped in %.1fs", time.monotonic() - stopped)


async def run_stack(options: StackOptions) -> int:
    """``speech-pipeline up``: run until SIGINT/SIGTERM; returns the exit code."""

    async def serve(supervisor: Supervisor) -> int:
        await supervisor.wait_stopped()
        return 0

    return await _with_stack(options, serve)


async def run_demo(options: StackOptions, client_args: list[str]) -> int:
    """``speech-pipeline demo``: the stack, the demo client against it, then down; the client's code."""

    async def demo(supervisor: Supervisor) -> int:
        args = [sys.executable, str(DEMO_CLIENT), "--url", f"ws://127.0.0.1:{supervisor.gateway_port}/",
                "--show-transcripts", *client_args]
        proc = await asyncio.create_subprocess_exec(*args)
        if await _until_stopped(supervisor, proc.wait()) is None:
            proc.terminate()
            await proc.wait()
        return proc.returncode or 0

    print("starting the pipeline (Redis, gateway, STT worker, translation worker, transcript store)...", flush=True)
    return await _with_stack(options, demo)
