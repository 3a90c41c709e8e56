"""The reliable stream consumer both workers run: read, run, publish, then acknowledge.

One loop per worker process (arq style):

1. ``XREADGROUP`` up to ``batch_size`` entries, waiting ``batch_timeout_ms`` after the first
   to fill a batch;
2. decode each entry; a malformed one goes straight to ``dead_letters`` with the reason;
3. hand the batch to the worker's handler, which publishes its results and returns;
4. ``XACK`` then ``XDEL`` the handled entries. An entry is acknowledged only after its result
   is published, so a worker that dies mid-batch loses nothing: its entries stay pending.

Every ``claim_interval`` the loop takes over entries another consumer left pending longer than
``claim_idle_ms`` (``XAUTOCLAIM``). An entry delivered more than ``max_deliveries`` times is
poison: it goes to ``dead_letters`` instead of killing one worker after another. The consumer
name is stable (host name and index) so a restarted worker first finishes its own pending
entries. Stopping: the loop stops reading, finishes the batch in hand, acknowledges, returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import ResponseError

from common.bus import (
    DEAD_LETTER_DROPPED_FIELDS,
    DEAD_LETTER_MAX_FIELD_BYTES,
    DEAD_LETTERS,
    DEAD_LETTERS_MAXLEN,
    DEAD_LETTERS_TTL_SECONDS,
    MalformedMessage,
    without_session_ids,
)
from common.logs import log_context
from common.redis_conn import RETRYABLE

log = logging.getLogger(__name__)

T = TypeVar("T")

ENTRIES = Counter("bus_entries_total", "Stream entries handled, by outcome", ["stream", "outcome"])
RECLAIMED = Counter("bus_reclaimed_total", "Entries taken over from idle consumers", ["stream"])
DEAD_LETTERED = Counter("bus_dead_lettered_total", "Entries moved to dead_letters", ["stream"])
QUEUE_DEPTH = Gauge("bus_queue_depth", "Entries in the stream (queued + in flight)", ["stream"])
PENDING = Gauge("bus_consumer_pending", "Entries delivered to the group, not yet acknowledged", ["stream"])


@dataclass(frozen=True)
class ConsumerOptions:
    stream: str
    group: str
    consumer: str
    batch_size: int = 8
    batch_timeout_ms: int = 20
    block_ms: int = 500
    claim_idle_ms: int = 15000
    max_deliveries: int = 3
    claim_interval_s: float | None = None  # default: half of claim_idle_ms



def _ids_of(job: Any) -> dict[str, str]:
    """session_id, segment_id and traceparent of a decoded job (a bus message, or a tuple
    starting with one), for the log lines of its handling."""
    message = job[0] if isinstance(job, tuple) and job else job
    ids = {name: getattr(message, name, None) for name in ("session_id", "segment_id", "traceparent")}
    return {name: value for name, value in ids.items() if isinstance(value, str)}

@dataclass(frozen=True)
class Entry(Generic[T]):
    """A decoded stream entry handed to the handler."""

    id: str
    job: T
    deliveries: int = 1


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    last_batch_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# The handler publishes results for the entries it was given and returns the ids it finished
# (published or deliberately skipped). Ids it leaves out stay pending and come back later.
Handler = Callable[[list[Entry[T]]], Awaitable[Sequence[str]]]
Decoder = Callable[[dict[Any, Any]], T]


def _sid(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamConsumer(Generic[T]):
    def __init__(
        self,
        redis: aioredis.Redis,
        options: ConsumerOptions,
        decode: Decoder[T],
        handler: Handler[T],
        *,
        turn: asyncio.Lock | None = None,
    ) -> None:
        self.redis = redis
        # Shared by the consumers of one worker's shards (common.sharded_consumer): one batch
        # at a time runs through the handler, whichever shard it came from.
        self._turn = turn
        self.options = options
        self._decode = decode
        self._handler = handler
        self.stats = ConsumerStats()
        self._stop = asyncio.Event()
        self._last_claim = 0.0

    async def ensure_group(self) -> None:
        """Create the stream and group if missing (from the start of the stream)."""
        try:
            await self.redis.xgroup_create(self.options.stream, self.options.group, id="0", mkstream=True)
            log.info("created group %s on %s", self.options.group, self.options.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        """Stop reading; the batch in hand is finished and acknowledged."""
        self._stop.set()

    async def run(self) -> None:
        await self.ensure_group()
        # Entries this consumer name held before a restart come first.
        await self._process(await self._read("0"), reclaimed=True)
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await self._maybe_reclaim()
                raw = await self._read(">")
                if raw:
                    raw += await self._fill(len(raw))
                await self._process(raw)
                backoff = 0.1
            except RETRYABLE as exc:
                log.warning("redis error in consumer loop (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # stream deleted under us (e.g. FLUSHALL): recreate
                    log.warning("group vanished; recreating")
                    await self.ensure_group()
                else:
                    raise

    async def _read(
        self, start: str, count: int | None = None, block: int | None = None
    ) -> list[tuple[str, dict[Any, Any]]]:
        o = self.options
        reply: Any = await self.redis.xreadgroup(
            o.group,
            o.consumer,
            {o.stream: start},
            count=count or o.batch_size,
            block=None if start != ">" else (o.block_ms if block is None else block),
        )
        entries: list[tuple[str, dict[Any, Any]]] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                if fields:  # history reads return deleted entries with empty fields
                    entries.append((_sid(entry_id), fields))
                elif start != ">":
                    await self.redis.xack(o.stream, o.group, entry_id)
        return entries

    async def _fill(self, have: int) -> list[tuple[str, dict[Any, Any]]]:
        """Wait up to batch_timeout_ms for more entries to batch with the first ones."""
        o = self.options
        if have >= o.batch_size or o.batch_timeout_ms <= 0:
            return []
        deadline = time.monotonic() + o.batch_timeout_ms / 1000
        extra: list[tuple[str, dict[Any, Any]]] = []
        while have + len(extra) < o.batch_size:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            got = await self._read(">", count=o.batch_size - have - len(extra), block=left_ms)
            if not got:
                break
            extra += got
        return extra

    async def _maybe_reclaim(self) -> None:
        o = self.options
        interval = o.claim_interval_s if o.claim_interval_s is not None else o.claim_idle_ms / 2000
        now = time.monotonic()
        if now - self._last_claim < interval:
            return
        self._last_claim = now
        start = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                o.stream, o.group, o.consumer, min_idle_time=o.claim_idle_ms, start_id=start, count=o.batch_size
            )
            next_start, claimed = _sid(reply[0]), reply[1]
            items = [(_sid(i), f) for i, f in claimed if f]
            if items:
                RECLAIMED.labels(o.stream).inc(len(items))
                self.stats.reclaimed += len(items)
                log.info("reclaimed %d idle entries from %s", len(items), o.stream)
                await self._process(items, reclaimed=True)
            if next_start == "0-0" or not claimed or self._stop.is_set():
                break
            start = next_start

    async def _deliveries(self, entry_id: str) -> int:
        o = self.options
        info = await self.redis.xpending_range(o.stream, o.group, min=entry_id, max=entry_id, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    async def _process(self, raw: list[tuple[str, dict[Any, Any]]], *, reclaimed: bool = False) -> None:
        if not raw:
            return
        if self._turn is None:
            await self._process_batch(raw, reclaimed=reclaimed)
            return
        async with self._turn:
            await self._process_batch(raw, reclaimed=reclaimed)

    async def _process_batch(self, raw: list[tuple[str, dict[Any, Any]]], *, reclaimed: bool) -> None:
        o = self.options
        entries: list[Entry[T]] = []
        for entry_id, fields in raw:
            deliveries = await self._deliveries(entry_id) if reclaimed else 1
            if deliveries > o.max_deliveries:
                await self.dead_letter(entry_id, fields, f"delivered {deliveries} times (max {o.max_deliveries})")
                continue
            try:
                entries.append(Entry(entry_id, self._decode(fields), deliveries))
            except MalformedMessage as exc:
                await self.dead_letter(entry_id, fields, f"malformed: {exc}")
        if not entries:
            return
        self.stats.last_batch_at = time.time()
        done = await self._handle(entries)
        if done:
            await self.ack(done)
        ENTRIES.labels(o.stream, "done").inc(len(done))
        failed = len(entries) - len(done)
        if failed:
            ENTRIES.labels(o.stream, "failed").inc(failed)
        self.stats.handled += len(done)
        self.stats.failed += failed

    async def _handle(self, entries: list[Entry[T]]) -> list[str]:
        try:
            with log_context(**_ids_of(entries[0].job) if len(entries) == 1 else {}):
                return list(await self._handler(entries))
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(entries) == 1:
                log.exception("handler failed on entry %s; it stays pending", entries[0].id)
                return []
            # One bad entry must not sink the batch: retry one at a time.
            log.exception("handler failed on a batch of %d; retrying one by one", len(entries))
            done: list[str] = []
            for entry in entries:
                done += await self._handle([entry])
            return done

    async def ack(self, ids: Sequence[str]) -> None:
        o = self.options
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(o.stream, o.group, *ids)
            pipe.xdel(o.stream, *ids)
            await pipe.execute()

    async def dead_letter(self, entry_id: str, fields: dict[Any, Any], reason: str) -> None:
        o = self.options
        fields = without_session_ids(fields)  # operators see the job, not whose session it was
        record: dict[Any, Any] = {
            "stream": o.stream,
            "group": o.group,
            "entry_id": entry_id,
            "consumer": o.consumer,
            "reason": reason,
            "time": f"{time.time():.3f}",
        }
        for key, value in fields.items():
            name = _sid(key)
            if name in DEAD_LETTER_DROPPED_FIELDS:
                # The payload is not kept, only how big it was.
                record[f"dropped:{name}"] = str(len(value) if isinstance(value, bytes | str) else 0)
            else:
                keep = isinstance(value, bytes | str)
                record[f"field:{name}"] = value[:DEAD_LETTER_MAX_FIELD_BYTES] if keep else value
        oldest_kept_ms = int((time.time() - DEAD_LETTERS_TTL_SECONDS) * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(DEAD_LETTERS, record, maxlen=DEAD_LETTERS_MAXLEN, approximate=True)
            # Exact, not "~": dead letters are rare, and a lone old entry must go too.
            pipe.xtrim(DEAD_LETTERS, minid=f"{oldest_kept_ms}-0", approximate=False)
            pipe.expire(DEAD_LETTERS, DEAD_LETTERS_TTL_SECONDS)
            await pipe.execute()
        await self.ack([entry_id])
        DEAD_LETTERED.labels(o.stream).inc()
        self.stats.dead_lettered += 1
        log.warning("entry %s of %s dead-lettered: %s", entry_id, o.stream, reason)

    async def refresh_gauges(self) -> tuple[int, int]:
        """Queue depth (XLEN) and pending count of the group, also set as gauges."""
        o = self.options
        depth = int(await self.redis.xlen(o.stream))
        pending = 0
        try:
            summary = await self.redis.xpending(o.stream, o.group)
            pending = int(summary.get("pending", 0)) if isinstance(summary, dict) else 0
        except ResponseError:
            pass
        QUEUE_DEPTH.labels(o.stream).set(depth)
        PENDING.labels(o.stream).set(pending)
        return depth, pending
