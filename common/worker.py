"""The shell every reliable stream consumer shares: Redis, health server, heartbeat, consumer loop.

:class:`StreamService` is that shell, for any service that reads one group of a stream (or of
its shards) and acknowledges after its own work is done: the transcript store uses it as it is.
:class:`StreamWorker` adds a model, for the STT and translation workers.

A subclass says which stream shards it reads (``job_streams``; one stream on a single node)
and with which group, how to decode an entry, how many to take at once and how to handle a
batch. The shell does the rest: ``startup`` starts the health server at once (``/ready``
answers 503 until every check passes), runs the subclass's ``prepare`` and connects to Redis;
``main_loop`` runs the consumer until a stop is asked; ``shutdown`` lets the batch in flight
finish, acknowledges it and deletes the heartbeat. A model worker's ``startup`` also loads
its model in a thread, and its consumer starts once the model is loaded.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from prometheus_client import Counter

from common.consumer import ConsumerOptions, Entry
from common.health import Check, HealthServer, HealthState
from common.heartbeat import Heartbeat
from common.lifecycle import Service
from common.memdebug import rss_bytes
from common.memtrim import HeapTrimmer, TrimPolicy
from common.redis_conn import connect_with
from common.security_settings import prepare_listeners
from common.settings import ConsumerSettings, WorkerSettings
from common.sharded_consumer import ShardedConsumer

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY_TRIMS = Counter("worker_memory_trims_total", "Free heap given back to the system, by occasion", ["when"])


def consumer_name(settings: ConsumerSettings) -> str:
    """Stable per host and index, so a restarted worker finds its own pending entries."""
    return f"{settings.instance_name}-{settings.worker_index}"


class StreamService(Service, Generic[T]):
    """A service that consumes one group of a stream (or of its shards)."""

    group: str
    stream: str = ""  # a subclass reading one unsharded stream may name it here instead
    settings: ConsumerSettings  # a subclass may narrow it to its own settings class

    def __init__(self, settings: ConsumerSettings) -> None:
        super().__init__()
        self.settings = settings
        self.worker_name = consumer_name(settings)
        self.redis: aioredis.Redis | None = None
        self.consumer: ShardedConsumer[T] | None = None
        self.health = HealthState(service=self.name, instance=self.worker_name)
        self.health_server: HealthServer | None = None
        self.heartbeat: Heartbeat | None = None
        # Free heap back to the system when idle and over the soft limit (common.memtrim).
        self.trim = HeapTrimmer(TrimPolicy(
            idle_seconds=settings.memory_trim_idle_seconds,
            soft_limit_bytes=settings.memory_soft_limit_mb * 2**20,
        ), rss_bytes, MEMORY_TRIMS)

    # Subclass hooks ---------------------------------------------------------------

    def job_streams(self) -> list[str]:
        """The streams (shards) to read; called once ``connect_with`` has set the bus layout."""
        if not self.stream:
            raise NotImplementedError(f"{type(self).__name__} names no stream: override job_streams()")
        return [self.stream]

    @abstractmethod
    def decode(self, fields: dict[Any, Any]) -> T:
        """Decode and validate an entry; raise common.bus.MalformedMessage if bad."""

    @abstractmethod
    def batch_size(self) -> int:
        """At most how many entries one ``handle`` call gets."""

    @abstractmethod
    async def handle(self, entries: list[Entry[T]]) -> Sequence[str]:
        """Do a batch's work; return the ids finished (the consumer acknowledges them)."""

    def readiness_checks(self) -> dict[str, Check]:
        """``/ready`` checks besides Redis."""
        return {}

    async def prepare(self) -> None:
        """What to set up once the health server answers and before Redis (a database, say)."""

    async def before_stop(self, run: asyncio.Task[None]) -> None:
        """Asked to stop, before the consumer stops taking entries (``run`` is its loop)."""

    def health_details(self) -> dict[str, Any]:
        return {}

    def heartbeat_info(self) -> dict[str, Any]:
        stats = self.consumer.stats if self.consumer else None
        return {"worker": self.worker_name, "handled": stats.handled if stats else 0}

    # Lifecycle ---------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        # No client port (only health and metrics): METRICS_TOKEN is guard enough.
        ssl_context = prepare_listeners(s, redis_url=s.redis_url.get_secret_value(), serves_clients=False)
        for name, check in {"redis": self._check_redis, **self.readiness_checks()}.items():
            self.health.add_check(name, check)
        self.health.details.append(self._details)
        self.health_server = HealthServer.for_service(self.health, s, ssl_context)
        await self.health_server.start()
        await self.prepare()
        self.redis = await connect_with(s)
        self.consumer = ShardedConsumer(
            self.redis,
            ConsumerOptions(
                stream="",  # one consumer per shard fills it in (ShardedConsumer)
                group=self.group,
                consumer=self.worker_name,
                batch_size=self.batch_size(),
                batch_timeout_ms=s.batch_timeout_ms,
                claim_idle_ms=s.claim_idle_ms,
                max_deliveries=s.max_deliveries,
            ),
            self.job_streams(),
            self.decode,
            self._run_batch,
        )
        await self.consumer.ensure_group()
        self.heartbeat = Heartbeat(
            self.redis, self.name, self.worker_name, s.heartbeat_ttl_seconds, info=self.heartbeat_info
        )
        self.heartbeat.start()

    async def _run_batch(self, entries: list[Entry[T]]) -> Sequence[str]:
        """The consumer's handler: :meth:`handle`, then a trim when one is due (the consumer
        waits for it, so it never competes with inference for the heap's locks)."""
        self.trim.started()
        try:
            return await self.handle(entries)
        finally:
            await self.trim.ended()

    async def main_loop(self) -> None:
        assert self.consumer is not None
        log.info("%s %s consuming %s as %s", self.name, self.worker_name,
                 ",".join(self.consumer.streams), self.group)
        run = asyncio.create_task(self.consumer.run(), name="consumer")
        gauges = asyncio.create_task(self._refresh_gauges(), name="gauges")
        idle_trim = asyncio.create_task(self.trim.idle_loop(), name="trim-when-idle")
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if run in done:
                run.result()  # the consumer only returns on error: surface it
                return
            await self.before_stop(run)
            self.consumer.stop()  # finish and acknowledge the batch in hand
            await run
        finally:
            for task in (gauges, stop, idle_trim):
                task.cancel()

    async def _refresh_gauges(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                await self.consumer.refresh_gauges()
            except Exception:
                log.debug("gauge refresh failed", exc_info=True)
            await asyncio.sleep(2.0)

    async def shutdown(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        if self.health_server is not None:
            await self.health_server.stop()
            self.health_server = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # Health --------------------------------------------------------------------------

    async def _check_redis(self) -> tuple[bool, str]:
        if self.redis is None:
            return False, "not connected"
        await self.redis.ping()
        return True, "ok"

    def _details(self) -> dict[str, Any]:
        stats = self.consumer.stats if self.consumer else None
        details: dict[str, Any] = {"worker": self.worker_name}
        if stats is not None:
            details.update(
                handled=stats.handled,
                failed=stats.failed,
                reclaimed=stats.reclaimed,
                dead_lettered=stats.dead_lettered,
            )
        details.update(self.health_details())
        return details


class StreamWorker(StreamService[T]):
    """A stream service with a model: it consumes only once the model has loaded."""

    settings: WorkerSettings

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(settings)
        self.model_loaded = asyncio.Event()
        self._load_task: asyncio.Task[None] | None = None

    @abstractmethod
    def load_model(self) -> None:
        """Load the model (blocking; runs in a thread). Raise to report failure."""

    def batch_size(self) -> int:
        return self.settings.max_batch_size  # one batched inference

    def readiness_checks(self) -> dict[str, Check]:
        return {"model": self._check_model}

    async def startup(self) -> None:
        await super().startup()
        self._load_task = asyncio.create_task(self._load(), name="load-model")

    async def _load(self) -> None:
        try:
            await asyncio.to_thread(self.load_model)
        except Exception as exc:
            log.exception("model failed to load")
            self.health.set_degraded("model", f"model failed to load: {exc}")
            self.request_stop()
            return
        self.model_loaded.set()

    async def main_loop(self) -> None:
        await asyncio.wait(
            [asyncio.ensure_future(self.model_loaded.wait()), asyncio.ensure_future(self.stopping.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self.stopping.is_set():
            return
        await super().main_loop()

    async def shutdown(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await super().shutdown()

    async def _check_model(self) -> tuple[bool, str]:
        return (True, "loaded") if self.model_loaded.is_set() else (False, "loading")

    def _details(self) -> dict[str, Any]:
        return {"model_loaded": self.model_loaded.is_set(), **super()._details()}
