"""The transcript store service: ``transcripts`` stream in, database rows out.

It runs the same reliable consumer as the workers (:class:`common.consumer.StreamConsumer`,
group ``transcript_store``): a batch is written in one transaction and acknowledged only
after the commit, so a store killed at any point loses nothing (its entries stay pending and
come back to it, or to another replica after ``CLAIM_IDLE_MS``) and, because the writes are
idempotent, writes nothing twice. While the database is unreachable it retries the batch in
hand with backoff (``/ready`` says so) instead of failing entries into dead letters; an entry
that still fails on a healthy database is poison and goes there after ``MAX_DELIVERIES``.

On SIGTERM it first drains the stream (bounded), then finishes the batch in hand.
At start it migrates the schema to the newest revision (a no-op when the migration step of
compose or Kubernetes already did) and refuses a schema newer than it knows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from common import bus
from common.consumer import ConsumerOptions, Entry, StreamConsumer
from common.health import HealthServer, HealthState
from common.heartbeat import Heartbeat
from common.lifecycle import Service, StartupRefused
from common.logs import register_secret
from common.redis_conn import connect_with
from common.security_settings import prepare_listeners
from common.settings import StoreSettings
from common.worker import consumer_name
from transcript_store import migrate
from transcript_store.db import database_url, engine_from_settings, redacted
from transcript_store.retention import RetentionPolicy, RetentionTask
from transcript_store.writer import TranscriptWriter, WriteResult

log = logging.getLogger(__name__)

ROWS = Counter("store_rows_total", "Records written, by kind and outcome", ["kind", "outcome"])
WRITE_SECONDS = Histogram(
    "store_write_seconds", "Wall time of one batch transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DB_ERRORS = Counter("store_database_errors_total", "Batch writes that failed on the database and were retried")

# Errors of the connection rather than of the data: the same batch is retried, not dead-lettered.
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, OSError)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT)


class TranscriptStoreService(Service):
    name = bus.STORE_SERVICE

    def __init__(self, settings: StoreSettings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.consumer_name = consumer_name(settings)
        self.health = HealthState(service=self.name, instance=self.consumer_name)
        self.health_server: HealthServer | None = None
        self.redis: aioredis.Redis | None = None
        self.engine: AsyncEngine | None = None
        self.writer: TranscriptWriter | None = None
        self.consumer: StreamConsumer[bus.TranscriptRecord] | None = None
        self.heartbeat: Heartbeat | None = None
        self.retention: RetentionTask | None = None
        self.schema: migrate.SchemaStatus | None = None
        self.written = WriteResult()
        self._tasks: list[asyncio.Task[Any]] = []

    async def startup(self) -> None:
        s = self.settings
        # Its only port is health and metrics, like a worker's: METRICS_TOKEN is guard enough.
        ssl_context = prepare_listeners(s, redis_url=s.redis_url.get_secret_value(), serves_clients=False)
        self.health.add_check("redis", self._check_redis)
        self.health.add_check("database", self._check_database)
        self.health.details.append(self._details)
        self.health_server = HealthServer.for_service(self.health, s, ssl_context)
        await self.health_server.start()
        url = database_url(s)
        if url.password:
            register_secret(str(url.password))  # never in a log line, whatever logs it
        self.engine = engine_from_settings(s)
        log.info("transcript database %s", redacted(url))
        try:
            self.schema = await migrate.upgrade(self.engine)  # SchemaTooNew refuses the start
        except (SQLAlchemyError, OSError) as exc:
            # One line, no traceback: the orchestrator (or speech-pipeline up) restarts us.
            raise StartupRefused(f"database {redacted(url)} unusable: {exc.__class__.__name__}: "
                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
        self.writer = TranscriptWriter(self.engine, self.clock)
        self.redis = await connect_with(s)
        self.consumer = StreamConsumer(
            self.redis,
            ConsumerOptions(
                stream=bus.TRANSCRIPTS, group=bus.STORE_GROUP, consumer=self.consumer_name,
                batch_size=s.store_batch_size, batch_timeout_ms=s.batch_timeout_ms,
                claim_idle_ms=s.claim_idle_ms, max_deliveries=s.max_deliveries,
            ),
            bus.decode_transcript,
            self.handle,
        )
        await self.consumer.ensure_group()
        self.heartbeat = Heartbeat(
            self.redis, self.name, self.consumer_name, s.heartbeat_ttl_seconds,
            info=lambda: {"worker": self.consumer_name, "segments": self.written.segments},
        )
        self.heartbeat.start()
        self.retention = RetentionTask(
            self.engine, RetentionPolicy(s.transcript_retention_days), s.retention_interval_seconds, self.clock
        )

    async def handle(self, entries: list[Entry[bus.TranscriptRecord]]) -> Sequence[str]:
        """Commit the batch, then report every id done (the consumer acknowledges them)."""
        assert self.writer is not None
        backoff = 0.2
        while True:
            started = time.perf_counter()
            try:
                result = await self.writer.write([e.job for e in entries])
                break
            except Exception as exc:
                if not _is_transient(exc):
                    raise  # the consumer retries one by one; a poison entry ends in dead letters
                DB_ERRORS.inc()
                self.health.set_degraded("database", f"writes failing: {exc.__class__.__name__}")
                log.warning("database write failed (%s); retrying in %.1fs", exc.__class__.__name__, backoff)
                if self.stopping.is_set():
                    return []  # left pending: redelivered to this consumer when it restarts
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        WRITE_SECONDS.observe(time.perf_counter() - started)
        self.health.set_degraded("database", None)
        ROWS.labels("segment", "inserted").inc(result.segments)
        ROWS.labels("translation", "inserted").inc(result.translations)
        ROWS.labels("any", "duplicate").inc(result.duplicates)
        ROWS.labels("any", "deleted_session").inc(result.dropped)
        w = self.written
        self.written = WriteResult(
            w.segments + result.segments, w.translations + result.translations,
            w.duplicates + result.duplicates, w.dropped + result.dropped,
        )
        return [e.id for e in entries]

    async def main_loop(self) -> None:
        assert self.consumer is not None and self.retention is not None
        log.info("%s %s consuming %s as %s", self.name, self.consumer_name, bus.TRANSCRIPTS, bus.STORE_GROUP)
        run = asyncio.create_task(self.consumer.run(), name="consumer")
        self._tasks = [
            asyncio.create_task(self.retention.run(), name="retention"),
            asyncio.create_task(self._refresh_gauges(), name="gauges"),
        ]
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if run in done:
                run.result()
                return
            await self._drain(run)
            self.consumer.stop()  # finish, commit and acknowledge the batch in hand
            await run
        finally:
            stop.cancel()
            for task in self._tasks:
                task.cancel()

    async def _drain(self, run: asyncio.Task[None]) -> None:
        """Before stopping, take what the workers published while they stopped: the store stops
        last (``speech-pipeline up`` orders it so), and with an embedded Redis whatever is still
        in the stream would go with it. Bounded by half the shutdown budget."""
        assert self.redis is not None
        deadline = time.monotonic() + self.settings.shutdown_timeout_seconds / 2
        while not run.done() and time.monotonic() < deadline and not self.forced:
            try:
                if int(await self.redis.xlen(bus.TRANSCRIPTS)) == 0:
                    return
            except Exception:
                log.warning("could not read the stream length while draining", exc_info=True)
                return
            await asyncio.sleep(0.05)

    async def _refresh_gauges(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                await self.consumer.refresh_gauges()
            except Exception:
                log.debug("gauge refresh failed", exc_info=True)
            await asyncio.sleep(2.0)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        if self.health_server is not None:
            await self.health_server.stop()
            self.health_server = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def _check_redis(self) -> tuple[bool, str]:
        if self.redis is None:
            return False, "not connected"
        await self.redis.ping()
        return True, "ok"

    async def _check_database(self) -> tuple[bool, str]:
        if self.engine is None or self.schema is None:
            return False, "not migrated yet"
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True, f"schema {self.schema.current}"

    def _details(self) -> dict[str, Any]:
        stats = self.consumer.stats if self.consumer else None
        details: dict[str, Any] = {
            "worker": self.consumer_name,
            "schema": self.schema.current if self.schema else None,
            "segments_written": self.written.segments,
            "translations_written": self.written.translations,
            "duplicates_skipped": self.written.duplicates,
            "retention_days": self.settings.transcript_retention_days,
            "retention_deleted": self.retention.deleted if self.retention else 0,
        }
        if stats is not None:
            details.update(
                handled=stats.handled, failed=stats.failed, reclaimed=stats.reclaimed,
                dead_lettered=stats.dead_lettered,
            )
        return details
