"""Result delivery from Redis pub/sub to the sessions this gateway holds.

One pub/sub connection per gateway, not one per client: ``subscribe(session_id, callback)``
adds the session's ``results:{id}`` channel to the shared connection, and a single reader task
decodes each message and calls the session's callback. If the connection is lost, the reader
reconnects with backoff and subscribes every channel again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from prometheus_client import Counter

from common import bus
from common.redis_conn import RETRYABLE, open_pubsub

log = logging.getLogger(__name__)

Callback = Callable[[bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult], None]

MALFORMED = Counter("gateway_malformed_results_total", "Results on pub/sub that failed to decode")
CONTROL_PREFIX = "control:"


Control = Callable[[str], None]


class ResultRouter:
    """Several holders may subscribe to one session at once (a client that reconnects before
    its old connection has let go): each is routed every result and control note, and the
    Redis subscription lasts until the last holder unsubscribes."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._pubsub: aioredis.client.PubSub | None = None
        self._holders: dict[str, dict[str, tuple[Callback, Control | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = await open_pubsub(self._redis)
        self._task = asyncio.create_task(self._reader(), name="result-router")

    async def subscribe(
        self, session_id: str, holder: str, callback: Callback, control: Control | None = None
    ) -> None:
        """Route the session's results to ``callback`` of ``holder`` (a connection's id).

        The SUBSCRIBE is sent before this returns, so it reaches Redis before any job the
        caller queues afterwards could produce a result.
        """
        assert self._pubsub is not None
        holders = self._holders.setdefault(session_id, {})
        holders[holder] = (callback, control)
        if len(holders) == 1:
            await self._pubsub.subscribe(bus.results_channel(session_id))
        self._subscribed.set()

    async def unsubscribe(self, session_id: str, holder: str) -> None:
        """Stop routing to ``holder``; the channel is left when no holder remains."""
        holders = self._holders.get(session_id)
        if holders is None or holders.pop(holder, None) is None or holders:
            return
        del self._holders[session_id]
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(bus.results_channel(session_id))
            except RETRYABLE:
                log.debug("unsubscribe failed; the reconnect will not resubscribe it", exc_info=True)

    def local_holders(self, session_id: str) -> int:
        return len(self._holders.get(session_id, {}))

    async def publish_control(self, session_id: str, message: str) -> int:
        """A note to every holder of a session, on any gateway (e.g. a takeover on resume);
        returns how many gateways (Redis subscribers) received it."""
        return int(await self._redis.publish(bus.results_channel(session_id), CONTROL_PREFIX + message))

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        session_id = bus.session_of_results_channel(channel)
        holders = list(self._holders.get(session_id, {}).values())
        if not holders:
            return
        text = data.decode() if isinstance(data, bytes) else data
        if text.startswith(CONTROL_PREFIX):
            for _, control in holders:
                if control is not None:
                    control(text[len(CONTROL_PREFIX) :])
            return
        try:
            result = bus.decode_result(text)
        except bus.MalformedMessage as exc:
            MALFORMED.inc()
            log.warning("dropping malformed result on %s: %s", channel, exc)
            return
        for callback, _ in holders:
            callback(result)

    async def _reader(self) -> None:
        backoff = 0.1
        broken = False
        while True:
            assert self._pubsub is not None
            # Also while the first SUBSCRIBE is on its way: the pub/sub has no connection yet.
            if not self._holders or self._pubsub.connection is None:
                self._subscribed.clear()
            # Wait for the first SUBSCRIBE to be sent, not only for a holder to be registered:
            # until then the pub/sub object has no connection to read (a cluster client opens
            # it on the first SUBSCRIBE, on the node that owns the channel's slot).
            if not self._subscribed.is_set():
                await self._subscribed.wait()
            try:
                if broken:
                    await self._resubscribe()
                    broken = False
                    log.info("pub/sub resubscribed %d sessions", len(self._holders))
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except RETRYABLE as exc:
                log.warning("pub/sub connection lost (%s); resubscribing in %.1fs", exc, backoff)
                broken = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            try:
                self._dispatch(channel, message["data"])
            except Exception:
                log.exception("result callback failed for %s", channel)

    async def _resubscribe(self) -> None:
        """A fresh pub/sub connection with every held session's channel; raises if Redis is down."""
        old = self._pubsub
        self._pubsub = await open_pubsub(self._redis)
        if old is not None:
            try:
                await old.aclose()
            except RETRYABLE:
                pass
        channels = [bus.results_channel(s) for s in self._holders]
        if channels:
            await self._pubsub.subscribe(*channels)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.aclose()
