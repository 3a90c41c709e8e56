"""One client connection: the asyncio shell around a :class:`gateway.session_core.SessionCore`.

The core decides; this class carries data and executes its actions. Four parts:

* reader: client frames -> parse -> core (``run``);
* driver: entries of the session's result stream (from the router), and a timer set to the
  core's next deadline (``_driver``);
* sender: :class:`gateway.outbox.Outbox`, a bounded queue to the socket; a client that stops
  reading fills it and is closed (1008) instead of growing the gateway's memory;
* Redis adapter (:class:`gateway.session_writer.SessionWriter`): the session's writes and
  jobs in one ordered queue; a refused (fenced) write means another connection took over.

With auth on, a fifth task renews the subject's session slot (``common.periodic.repeat``).

Core calls never overlap (one lock), so a big frame segmented in a worker thread cannot race
a tick. A result the router hands over while the core is free, and the driver's queue empty,
skips the driver: the core takes it at once and the sender runs next (``_on_entry``).
:class:`gateway.effects.Effects` carries out what the core returns. A part that fails is
logged with its traceback and the client is closed with 1011 (it may resume), never left
without ``done``, timeouts or token expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from common import bus, tracing
from common.auth import AuthError, AuthLease
from common.periodic import repeat, stop_task
from common.redis_conn import RETRYABLE
from gateway import metrics, protocol
from gateway import session_actions as sa
from gateway import session_core as sc
from gateway.admission import Refused, authenticate
from gateway.client_socket import ClientSocket
from gateway.context import GatewayContext
from gateway.effects import Effects, needs_no_wait
from gateway.limits import Admission, AudioMeter
from gateway.outbox import Outbox
from gateway.session_writer import Failed, Fenced, SessionWriter
from gateway.sessions import new_secret

log = logging.getLogger(__name__)

BIG_FRAME_SAMPLES = 16000  # bigger frames are segmented in a worker thread
WRITER_FLUSH_SECONDS = 2.0  # what a closing connection waits for its last writes (inside the shutdown budget)
RENEW_SECONDS = 20.0  # how often the subject's session slot is renewed


def _clock() -> sa.Clock:
    return sa.Clock(time.monotonic(), time.time())


@dataclass(frozen=True)
class _Deferred:
    """Actions the core returned outside the driver that must be waited for: the driver runs them."""

    actions: list[sa.Action]


class Connection:
    def __init__(self, ctx: GatewayContext, ws: ClientSocket, admission: Admission | None = None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.admission = admission or Admission()
        self.slot = uuid.uuid4().hex  # this connection: its session slot and its holder id
        self.lease: AuthLease | None = None
        self.audio_meter: AudioMeter | None = None
        self.core = self._core(uuid.uuid4().hex)
        self.outbox = Outbox(ws, ctx.settings.send_queue_size)
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()  # (session id, result | note | ...)
        self.writer = SessionWriter(ctx, self.slot, lambda: self.core.session_id,
                                    lambda sid, item: self.inbox.put_nowait((sid, item)),
                                    lambda: self.lease.subject if self.lease else None)
        self.effects = Effects(self.outbox, self.writer, lambda: self.core.detach())
        self._lock = asyncio.Lock()
        self._armed = 0.0  # the deadline the driver's timer is set to
        self._tasks: list[asyncio.Task[Any]] = []  # sender, writer, driver
        self._renewer: asyncio.Task[None] | None = None  # the subject's session slot (auth on)
        self._stop_renewing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    def _core(self, session_id: str) -> sc.SessionCore:
        secret = None if self.ctx.guard.auth_enabled else new_secret()
        return sc.SessionCore(self.ctx.settings, session_id, _clock(), **self._core_options(secret))

    def _core_options(self, secret: str | None) -> dict[str, Any]:
        return {"silero": self.ctx.silero, "queue_depth": lambda: self.ctx.queue_depth, "lease": self.lease,
                "resume_secret": secret, "holder": self.slot}

    async def run(self) -> None:
        try:
            self.lease = await authenticate(self.ctx, self.ws, self.admission, self.slot)
        except Refused:
            return
        if self.lease is not None:
            self.audio_meter = AudioMeter(self.ctx.audio_quota, self.lease.subject)
            self.core = self._core(self.core.session_id)
        metrics.SESSIONS_TOTAL.labels("new").inc()
        core = self.core
        await self.ctx.store.create(core.session_id, self.slot, core.config,
                                    owner=self.lease.subject if self.lease else "", secret=core.resume_secret or "")
        await self.writer.feed_store(core.session_id, {"config": core.config}, None)
        await self._attach(core.session_id)
        for part in (self.outbox.run(), self.writer.run(), self._driver()):
            self._tasks.append(task := asyncio.create_task(part))
            task.add_done_callback(self._part_ended)
        if self.lease is not None:
            subject, sessions = self.lease.subject, self.ctx.subject_sessions
            self._renewer = asyncio.create_task(repeat(
                lambda: sessions.renew(subject, self.slot), RENEW_SECONDS, self._stop_renewing,
                what="session slot renewal"))
        try:
            async with self._lock:
                await self.effects.run(core.start())
            async for message in self.ws:
                async with self._lock:
                    await self._on_client(message)
                    if self.closed:
                        break
                    if self.core.deadline(_clock()) < self._armed:
                        self.inbox.put_nowait(("", None))  # the deadline moved closer: re-arm the timer
        finally:
            await self._close()

    async def _attach(self, session_id: str) -> None:
        await self.ctx.router.attach(session_id, self.slot, lambda item: self._on_entry(session_id, item))

    def _on_entry(self, session_id: str, item: Any) -> None:
        """An entry of a session's result stream, from the router. A result for the session
        held, whose actions need no waiting, is handled here at once when nothing else is:
        the sender is then the next task to run, not behind a hop through the driver and the
        router's next read. Anything else goes through the driver, in order."""
        if (isinstance(item, str) or self._lock.locked() or not self.inbox.empty() or self.closed
                or session_id != self.core.session_id):
            self.inbox.put_nowait((session_id, item))
            return
        clock = _clock()
        actions = self._on_result(item, clock)
        left = self.effects.run_now(actions) if needs_no_wait(actions) else actions
        if left:
            self.inbox.put_nowait(("", _Deferred(left)))  # a close, a replay, a client not reading
        if self.core.deadline(clock) < self._armed:
            self.inbox.put_nowait(("", None))  # the deadline moved closer: re-arm the timer

    def _on_result(self, item: sc.Result, clock: sa.Clock) -> list[sa.Action]:
        if isinstance(item, bus.FinalResult | bus.TranslationResult):
            tracing.record_span("gateway.deliver", item.traceparent, attributes={"type": item.type})
        return self.core.on_result(item, clock)

    def _part_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None or self.closed:
            return
        log.error("a session part failed; closing the connection (the client may resume)",
                  exc_info=task.exception())
        metrics.REFUSED.labels("internal_error").inc()
        self.outbox.close_now(1011, "internal error; resume the session")

    # -- inputs ---------------------------------------------------------------------------

    async def _on_client(self, message: str | bytes) -> None:
        clock = _clock()
        ok, actions = self.core.admit(clock)
        if ok:
            try:
                actions = await self._dispatch(message, clock)
            except protocol.ProtocolError as exc:
                metrics.REFUSED.labels(exc.code).inc()
                actions = self.core.error(exc.code, exc.message)
        await self.effects.run(actions)

    async def _dispatch(self, message: str | bytes, clock: sa.Clock) -> list[sa.Action]:
        core = self.core
        if isinstance(message, bytes):
            pcm = protocol.parse_binary(message)
            refused = core.audio_refused()
            if refused is not None:
                return refused
            if self.audio_meter is not None:
                refusal = await self.audio_meter.add(len(pcm) / core.config.sample_rate)
                notice = core.on_quota(refusal)
                if refusal is not None:
                    return notice
            if len(pcm) > BIG_FRAME_SAMPLES:
                return await asyncio.to_thread(core.feed, pcm, clock)
            return core.feed(pcm, clock)
        msg = protocol.parse_text(message)
        if isinstance(msg, protocol.ConfigMessage) and msg.session_id not in (None, core.session_id):
            return await self._resume(msg, clock) + self.core.on_config(msg)
        if isinstance(msg, protocol.AuthMessage):
            try:
                return core.on_auth(self.ctx.guard.verify(self.ws.ip, msg.token) if self.lease else None)
            except AuthError as exc:
                return core.on_auth(None, exc.code, exc.message)
        return core.on_text(msg, clock)

    async def _resume(self, msg: protocol.ConfigMessage, clock: sa.Clock) -> list[sa.Action]:
        """Take over a stored session, only for its owner; anyone else gets ``unknown_session``
        and neither the session nor its holder notices."""
        assert msg.session_id is not None
        session_id = msg.session_id
        taken = await self.ctx.store.take_over(session_id, self.slot, self.lease.subject if self.lease else None,
                                               msg.resume_secret)  # from now on the old holder cannot write
        if taken is None:
            metrics.SESSIONS_TOTAL.labels("unknown_resume").inc()
            return self.core.error(protocol.ErrorCode.UNKNOWN_SESSION,
                                   "that session is unknown, expired or not yours; this one goes on")
        claimed, logged = taken
        self.ctx.router.detach(self.core.session_id, self.slot)
        self.core, replay = sc.SessionCore.resumed(
            self.ctx.settings, claimed, logged, msg.last_seq or 0, clock,
            **self._core_options(None if self.lease else msg.resume_secret))
        await self._attach(session_id)
        self.writer.put(sa.Note(f"{sc.TAKEOVER} {self.slot}"))
        metrics.SESSIONS_TOTAL.labels("resumed").inc()
        return replay

    async def _driver(self) -> None:
        """Results and notes in, and the core's clock: ``tick`` at its next deadline."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            clock = _clock()
            self._armed = self.core.deadline(clock)
            wait = max(0.0, self._armed - clock.now)
            # A timer item rather than wait_for: no task per wake-up on the result path.
            timer = loop.call_later(wait, self.inbox.put_nowait, ("", None))
            session_id, item = await self.inbox.get()
            timer.cancel()
            # Nothing awaits between the get and the lock: no result may be handled at once
            # (``_on_entry``) ahead of the one in hand.
            async with self._lock:
                core, clock = self.core, _clock()
                if isinstance(item, _Deferred):
                    actions = item.actions
                elif item is None:
                    actions = core.tick(clock)
                elif isinstance(item, Fenced):
                    actions = core.taken_over()
                elif isinstance(item, Failed):
                    actions = core.write_failed(item.action, clock)
                elif session_id != core.session_id:
                    continue  # for the session this connection left on resume
                elif isinstance(item, str):
                    actions = core.on_note(item, clock)
                else:
                    actions = self._on_result(item, clock)
                await self.effects.run(actions)

    # -- the end ----------------------------------------------------------------------------

    async def going_away(self) -> None:
        """The gateway is stopping: tell the client so it reconnects elsewhere and resumes."""
        self.outbox.close_now(1001, "gateway restarting; reconnect and resume")
        await self.outbox.settle()

    async def _close(self) -> None:
        """The socket is gone: write the counters, stop reading results, give the slot back.
        Results still on their way stay in the session's result stream for a resume."""
        async with self._lock:
            self.outbox.closed = True  # the socket is gone: nothing more to send
            await self.effects.run(self.core.detach())
        self.writer.stop()
        if len(self._tasks) > 1:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), WRITER_FLUSH_SECONDS)
        for task in self._tasks:
            task.cancel()
        await stop_task(self._renewer, self._stop_renewing, what="session slot renewal")
        await self.outbox.settle()
        self.ctx.router.detach(self.core.session_id, self.slot)
        if self.lease is not None:
            with contextlib.suppress(*RETRYABLE):
                await self.ctx.subject_sessions.release(self.lease.subject, self.slot)
                if self.audio_meter is not None:
                    await self.audio_meter.flush()
