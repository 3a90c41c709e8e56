"""How many rows a second the transcript store sustains, on SQLite and on PostgreSQL.

    python -m benchmarks.store [--records 20000] [--batch 200] [--databases sqlite,postgresql]

For each database: a fresh database, migrated; an embedded Redis whose ``transcripts`` stream
is pre-filled with finals and translations of many sessions (what the workers send); then the
real store service (consumer group, one transaction per batch, ack after commit) is started
and timed until the stream is drained. Also times the writer alone (no Redis), to show what
the bus costs. PostgreSQL runs on a throwaway server (``initdb`` in a temp dir, as the tests
do; fsync off, so the figure is the store's cost, not the disk's); skipped when PostgreSQL is
not installed. Figures depend on the machine: a shared one gives lower, noisier numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr

from common import bus
from common.embedded_redis import EmbeddedRedis
from common.redis_conn import connect
from common.settings import StoreSettings
from tests.postgres_server import PostgresServer, postgres_bindir
from transcript_store import migrate
from transcript_store.db import engine_from_settings
from transcript_store.schema import segments, translations
from transcript_store.service import TranscriptStoreService
from transcript_store.writer import TranscriptWriter


def make_records(n: int, sessions: int = 100) -> list[bus.TranscriptRecord]:
    """``n`` records: per session one owner record, then finals each followed by a translation."""
    records: list[bus.TranscriptRecord] = [
        bus.SessionInfo(session_id=f"bench-{s}", subject=f"user-{s % 10}", target_language="de", created_at=1.0)
        for s in range(sessions)
    ]
    i = 0
    while len(records) < n:
        s, index = i % sessions, i // sessions
        sid = f"bench-{s}"
        text = "the quick brown fox jumps over the lazy dog and keeps on running " * 2
        records.append(bus.FinalResult(
            session_id=sid, segment_id=bus.segment_id(sid, index), utterance_index=index, text=text,
            language="en", language_probability=0.99, start=index * 3.0, end=index * 3.0 + 2.5, worker="bench",
            words=[bus.Word(word=w, start=index * 3.0 + k * 0.2, end=index * 3.0 + k * 0.2 + 0.18, probability=0.9)
                   for k, w in enumerate(text.split()[:8])],
        ))
        records.append(bus.TranslationResult(
            session_id=sid, segment_id=bus.segment_id(sid, index), utterance_index=index, text=text.upper(),
            source_language="en", target_language="de", worker="bench",
        ))
        i += 1
    return records[:n]


async def _rows(settings: StoreSettings) -> int:
    engine = engine_from_settings(settings)
    try:
        async with engine.connect() as connection:
            total = 0
            for table in (segments, translations):
                total += int((await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
            return total
    finally:
        await engine.dispose()


async def bench_writer(settings: StoreSettings, records: list[bus.TranscriptRecord], batch: int) -> float:
    engine = engine_from_settings(settings)
    try:
        await migrate.upgrade(engine)
        writer = TranscriptWriter(engine)
        started = time.perf_counter()
        for at in range(0, len(records), batch):
            await writer.write(records[at:at + batch])
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def bench_service(settings: StoreSettings, redis_url: str, records: list[bus.TranscriptRecord]) -> float:
    redis = await connect(redis_url)
    try:
        await redis.delete(bus.TRANSCRIPTS)
        for at in range(0, len(records), 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for record in records[at:at + 1000]:
                    bus.add_transcript(pipe, record)
                await pipe.execute()
        service = TranscriptStoreService(settings.model_copy(update={"redis_url": SecretStr(redis_url)}))
        await service.startup()  # migrations and connections are not part of the figure
        started = time.perf_counter()
        loop = asyncio.create_task(service.main_loop())
        # The store deletes what it commits: an empty stream is the end (Redis has no event for it).
        while int(await redis.xlen(bus.TRANSCRIPTS)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        took = time.perf_counter() - started
        service.request_stop()
        await loop
        await service.shutdown()
        return took
    finally:
        await redis.aclose()


async def run_one(name: str, url: str, data_dir: Path, redis_url: str, records: list[bus.TranscriptRecord],
                  batch: int) -> None:
    base = StoreSettings(health_port=0, store_batch_size=batch, batch_timeout_ms=0, log_level="WARNING",
                         data_dir=data_dir, database_url=SecretStr(url))
    writer_seconds = await bench_writer(base, records, batch)
    service_settings = base.model_copy(update={"database_url": SecretStr(url.replace("writer", "service"))})
    service_seconds = await bench_service(service_settings, redis_url, records)
    stored = await _rows(service_settings)
    n = len(records)
    print(f"{name:<11} writer alone: {n / writer_seconds:8.0f} records/s   "
          f"store service (Redis -> DB, ack after commit): {n / service_seconds:8.0f} records/s   "
          f"({n} records, batch {batch}, {stored} rows)")


async def main_async(args: argparse.Namespace) -> None:
    records = make_records(args.records)
    wanted = [d.strip() for d in args.databases.split(",") if d.strip()]
    with EmbeddedRedis() as redis_server, tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(tmp)
        if "sqlite" in wanted:
            (root / "writer").mkdir()
            (root / "service").mkdir()
            await run_one("SQLite", f"sqlite:///{root}/writer/t.db", root, redis_server.url, records, args.batch)
        if "postgresql" in wanted:
            bindir = postgres_bindir()
            if bindir is None:
                print("PostgreSQL   skipped: not installed (Debian package postgresql)")
                return
            server = PostgresServer(bindir).start()
            try:
                for name in ("writer", "service"):
                    server.new_database_named(name)
                await run_one("PostgreSQL", server.database_url("writer"), root, redis_server.url, records,
                              args.batch)
            finally:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000, help="stream entries to write")
    parser.add_argument("--batch", type=int, default=200, help="STORE_BATCH_SIZE")
    parser.add_argument("--databases", default="sqlite,postgresql")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
