"""Result delivery from the per-session result streams to the connections of this gateway.

Workers append each result to ``result_stream:{session}`` (:func:`common.bus.publish_result`).
One reader task per gateway blocks on one ``XREAD`` over the streams of every session held
here, each from the last entry id its holder has seen, so delivery is at-least-once: a result
written while this gateway's Redis connection is down is read when it is back, never lost as it
was with pub/sub. Holders drop duplicates (a redelivered job's result) by utterance.

The read also covers ``gateway_wake:{router}``: :meth:`ResultRouter.attach` appends to it, so a
new session joins the blocking read at once instead of after the block times out.

In cluster mode one ``XREAD`` cannot span slots, and every session's stream is on its own
slot: the reader then polls instead, one non-blocking ``XREAD`` per session in one pipeline
(redis-py's cluster pipeline sends each node its share in one round trip) every
``CLUSTER_POLL_SECONDS``, or at once when a session is attached.

Besides worker results a stream carries control notes written by gateways (a takeover, an
early final's confirmation), in order with the results, for any holder of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter

from common import bus
from common.redis_conn import RETRYABLE, last_write

log = logging.getLogger(__name__)

Result = bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult
# A holder is called with each new entry: a worker's result, or a control note (a string).
Callback = Callable[[Result | str], None]

MALFORMED = Counter("gateway_malformed_results_total", "Results on a result stream that failed to decode")
BLOCK_MS = 5000
READ_COUNT = 512
START = "0-0"
CLUSTER_POLL_SECONDS = 0.05


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class _Holder:
    callback: Callback
    last: str  # the newest entry id this holder has been given


class ResultRouter:
    """Several holders may read one session at once (a client that resumed while its old
    connection is still open): each gets every entry after its own last id."""

    def __init__(self, redis: aioredis.Redis, ttl: int = bus.RESULT_STREAM_TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl  # SESSION_TTL_SECONDS, as the workers' appends set it
        self._wake_key = bus.gateway_wake_key(uuid.uuid4().hex)
        self._wake_last = START
        self._sessions: dict[str, dict[str, _Holder]] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._reader(), name="result-router")

    async def attach(self, session_id: str, holder: str, callback: Callback, after: str = START) -> None:
        """Give ``holder`` every entry of the session's stream after id ``after`` (all by
        default: a resuming holder drops what was already sent), now and from then on."""
        self._sessions.setdefault(session_id, {})[holder] = _Holder(callback, after)
        self._changed.set()
        try:
            await self._wake()
        except RETRYABLE:
            log.debug("wake-up failed; the reader picks the session up on its next read", exc_info=True)

    async def _wake(self) -> None:
        if bus.layout().cluster:
            return  # the poll loop waits on ``_changed``, set by the caller
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wake_key, {"w": "1"}, maxlen=16, approximate=False)
            pipe.expire(self._wake_key, self._ttl)
            await pipe.execute()

    def detach(self, session_id: str, holder: str) -> None:
        holders = self._sessions.get(session_id)
        if holders is not None and holders.pop(holder, None) is not None and not holders:
            del self._sessions[session_id]

    async def note(self, session_id: str, text: str) -> None:
        """A control note to every holder of the session, on any gateway, in stream order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self.queue_note(pipe, session_id, text)
            await pipe.execute()

    def queue_note(self, pipe: Any, session_id: str, text: str) -> None:
        """:meth:`note` queued on a pipeline (its first reply is the entry id)."""
        key = bus.result_stream_key(session_id)
        pipe.xadd(key, {"c": text}, maxlen=bus.RESULT_STREAM_MAXLEN, approximate=True)
        pipe.expire(key, self._ttl)

    def _dispatch(self, session_id: str, entry_id: str, fields: dict[bytes | str, bytes | str]) -> None:
        holders = [h for h in self._sessions.get(session_id, {}).values() if _id(entry_id) > _id(h.last)]
        if not holders:
            return
        data = {_s(k): v for k, v in fields.items()}
        item: Result | str
        if "c" in data:
            item = _s(data["c"])
        else:
            try:
                item = bus.decode_result(data.get("r", b""))
            except bus.MalformedMessage as exc:
                MALFORMED.inc()
                log.warning("dropping a malformed result: %s", exc)  # no session id in logs
                item = ""
        for holder in holders:
            holder.last = entry_id
            if item != "":
                holder.callback(item)

    async def _read(self, streams: dict[str, str]) -> Any:
        """New entries of ``streams``: one blocking XREAD, or on a cluster a pipelined poll."""
        if not bus.layout().cluster:
            return await self._redis.xread(streams, count=READ_COUNT, block=BLOCK_MS)  # type: ignore[arg-type]
        keys = [k for k in streams if k != self._wake_key]
        response: list[Any] = []
        if keys:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.xread({key: streams[key]}, count=READ_COUNT)
                for part in await pipe.execute():
                    response += part or []
        if not response:
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), CLUSTER_POLL_SECONDS)
        return response

    async def _reader(self) -> None:
        backoff = 0.1
        while not self._closing:
            if not self._sessions:
                self._changed.clear()
                await self._changed.wait()
            streams: dict[str, str] = {self._wake_key: self._wake_last}
            for session_id, holders in self._sessions.items():
                streams[bus.result_stream_key(session_id)] = min((h.last for h in holders.values()), key=_id)
            try:
                response: Any = await self._read(streams)
                backoff = 0.1
            except RETRYABLE as exc:
                if self._closing:
                    return  # redis-py may turn the cancellation of a blocked read into an error
                log.warning("result streams unreachable (%s); reading again in %.1fs", exc.__class__.__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._closing:
                return
            for key, entries in response or []:
                name = _s(key)
                if name == self._wake_key:
                    self._wake_last = _s(entries[-1][0])
                    continue
                session_id = bus.session_of_result_stream(name)
                for entry_id, fields in entries:
                    try:
                        self._dispatch(session_id, _s(entry_id), fields)
                    except Exception:
                        log.exception("a result callback failed")
            # Let the connections just handed results run before the next read is sent.
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Stop the reader: woken through its wake stream, since cancelling a blocked read
        makes redis-py retry it."""
        self._closing = True
        self._changed.set()
        task, self._task = self._task, None
        if await last_write(self._wake()) and task is not None:
            with contextlib.suppress(asyncio.TimeoutError, *RETRYABLE):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *RETRYABLE):
                await asyncio.wait_for(task, 2.0)
        await last_write(self._redis.delete(self._wake_key))
