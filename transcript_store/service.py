"""The transcript store service: ``transcripts`` stream in, database rows out.

It is a :class:`common.worker.StreamService`, the workers' shell without a model: the same
reliable consumer (group ``transcript_store``), health server and heartbeat. A batch is written
in one transaction and acknowledged only after the commit, so a store killed at any point
loses nothing (its entries stay pending and come back to it, or to another replica after
``CLAIM_IDLE_MS``) and, because the writes are idempotent, writes nothing twice. While the
database is unreachable it retries the batch in hand with backoff (``/ready`` says so) instead
of failing entries into dead letters; an entry that still fails on a healthy database is
poison and goes there after ``MAX_DELIVERIES``.

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

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from common import bus
from common.consumer import Entry
from common.health import Check
from common.lifecycle import StartupRefused
from common.logs import register_secret
from common.settings import StoreSettings
from common.worker import StreamService
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


class TranscriptStoreService(StreamService[bus.TranscriptRecord]):
    name = bus.STORE_SERVICE
    group = bus.STORE_GROUP
    stream = bus.TRANSCRIPTS
    settings: StoreSettings

    def __init__(self, settings: StoreSettings, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings)
        self.clock = clock
        self.engine: AsyncEngine | None = None
        self.writer: TranscriptWriter | None = None
        self.retention: RetentionTask | None = None
        self.schema: migrate.SchemaStatus | None = None
        self.written = WriteResult()
        self._tasks: list[asyncio.Task[Any]] = []

    def decode(self, fields: dict[Any, Any]) -> bus.TranscriptRecord:
        return bus.decode_transcript(fields)

    def batch_size(self) -> int:
        return self.settings.store_batch_size  # one transaction

    def readiness_checks(self) -> dict[str, Check]:
        return {"database": self._check_database}

    async def prepare(self) -> None:
        """The database, before Redis: migrated (or refused) while ``/ready`` says so."""
        s = self.settings
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
        self.retention = RetentionTask(
            self.engine, RetentionPolicy(s.transcript_retention_days), s.retention_interval_seconds, self.clock
        )

    def heartbeat_info(self) -> dict[str, Any]:
        return {"worker": self.worker_name, "segments": self.written.segments}

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
        assert self.retention is not None
        self._tasks = [asyncio.create_task(self.retention.run(), name="retention")]
        try:
            await super().main_loop()
        finally:
            for task in self._tasks:
                task.cancel()

    async def before_stop(self, run: asyncio.Task[None]) -> None:
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

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await super().shutdown()
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def _check_database(self) -> tuple[bool, str]:
        if self.engine is None or self.schema is None:
            return False, "not migrated yet"
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True, f"schema {self.schema.current}"

    def health_details(self) -> dict[str, Any]:
        return {
            "schema": self.schema.current if self.schema else None,
            "segments_written": self.written.segments,
            "translations_written": self.written.translations,
            "duplicates_skipped": self.written.duplicates,
            "retention_days": self.settings.transcript_retention_days,
            "retention_deleted": self.retention.deleted if self.retention else 0,
        }
