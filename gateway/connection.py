"""One client connection: the asyncio shell around a :class:`gateway.session_core.SessionCore`.

The core decides; this class carries data and executes its actions. Four parts:

* reader: client frames -> parse -> core (``run``);
* timer and results: entries of the session's result stream (from the router) and the
  core's next deadline drive ``tick`` (``_driver``);
* sender: a bounded queue to the socket; a client that stops reading fills it and is closed
  (1008) instead of growing the gateway's memory (``_sender``);
* Redis adapter: every write and job of the session in one ordered queue (``_writer``), so log
  entries land in seq order; a refused (fenced) write means another connection took over.

Core calls never overlap (one lock), so a big frame fed in a worker thread cannot race a tick.
Resume: check the owner, claim the session (atomic), and attach to a core loaded from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from common import bus
from common.auth import AuthError, AuthLease, Claims, token_from_auth_message
from common.redis_conn import RETRYABLE
from gateway import metrics, protocol
from gateway.client_socket import ClientSocket, SocketClosed
from gateway.context import GatewayContext
from gateway.limits import Admission, AudioMeter
from gateway.session_core import (
    TAKEOVER,
    Action,
    Clock,
    Close,
    Note,
    Phase,
    QueueAudio,
    QueueTranslation,
    Send,
    SessionCore,
    Write,
)
from gateway.sessions import new_secret

log = logging.getLogger(__name__)

BIG_FRAME_SAMPLES = 16000  # bigger frames are segmented in a worker thread
CLOSE_FLUSH_SECONDS = 0.5  # what a closing connection waits for its queued sends and writes
RENEW_SECONDS = 20.0  # how often the subject's session slot is renewed
FENCED = object()  # the writer's note: a write was refused, another connection holds the session


def _clock() -> Clock:
    return Clock(time.monotonic(), time.time())


class Connection:
    def __init__(self, ctx: GatewayContext, ws: ClientSocket, admission: Admission | None = None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.admission = admission or Admission()
        self.ip = str(ws.remote_address[0]) if getattr(ws, "remote_address", None) else "unknown"
        self.slot = uuid.uuid4().hex  # this connection: its session slot and its holder id
        self.lease: AuthLease | None = None
        self.audio_meter: AudioMeter | None = None
        self.core = self._core(uuid.uuid4().hex, None if ctx.guard.auth_enabled else new_secret())
        self.send_queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=ctx.settings.send_queue_size)
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()  # (session id, result | note | FENCED)
        self.writes: asyncio.Queue[Action | None] = asyncio.Queue()
        self.closed = False
        self._lock = asyncio.Lock()
        self._armed = 0.0  # the deadline the timer waits for
        self._tasks: list[asyncio.Task[Any]] = []

    def _core(self, session_id: str, secret: str | None, **kw: Any) -> SessionCore:
        return SessionCore(self.ctx.settings, session_id, _clock(), silero=self.ctx.silero,
                           queue_depth=lambda: self.ctx.queue_depth, lease=self.lease,
                           resume_secret=secret, gateway=self.ctx.name, holder=self.slot, **kw)

    async def _authenticate(self) -> bool:
        """Finish auth (first ``auth`` message when the handshake had no token) and take a
        session slot for the subject. False: refused, told, and closed with 1008."""
        if not self.ctx.guard.auth_enabled:
            return True
        claims = self.admission.claims
        try:
            if self.admission.deferred:
                try:
                    first = await asyncio.wait_for(self.ws.recv(), self.ctx.settings.auth_timeout_seconds)
                except asyncio.TimeoutError:
                    raise AuthError("token_missing", "send {type: auth, token} first") from None
                claims = self.ctx.guard.verify(self.ip, token_from_auth_message(first))
        except AuthError as exc:
            return await self._refuse(exc.code, exc.message)
        assert claims is not None
        refusal = await self.ctx.subject_sessions.acquire(claims.subject, self.slot)
        if refusal is not None:
            return await self._refuse(refusal.code, refusal.message)
        self.lease = AuthLease(claims, self.ctx.settings.token_expiry_grace_seconds)
        self.audio_meter = AudioMeter(self.ctx.audio_quota, claims.subject)
        self.core = self._core(self.core.session_id, None)
        return True

    async def _refuse(self, code: str, message: str) -> bool:
        """Before the session starts: an error frame, then close 1008 with the code."""
        metrics.REFUSED.labels(code).inc()
        with contextlib.suppress(SocketClosed):
            await self.ws.send(protocol.Error(code=code, message=message).to_json())
            await self.ws.close(1008, code)
        return False

    async def run(self) -> None:
        if not await self._authenticate():
            return
        metrics.SESSIONS_TOTAL.labels("new").inc()
        core = self.core
        await self.ctx.store.create(core.session_id, self.slot, core.config,
                                    owner=self.lease.subject if self.lease else "", secret=core.resume_secret or "")
        await self._attach(core.session_id)
        self._tasks = [asyncio.create_task(t) for t in (self._sender(), self._writer(), self._driver())]
        try:
            async with self._lock:
                await self._do(core.start())
            async for message in self.ws:
                async with self._lock:
                    await self._on_client(message)
                    if self.closed:
                        break
                    if self.core.deadline(_clock()) < self._armed:
                        self.inbox.put_nowait(("", None))  # the deadline moved closer: re-arm the timer
        except SocketClosed:
            pass
        finally:
            await self._close()

    async def _attach(self, session_id: str) -> None:
        await self.ctx.router.attach(session_id, self.slot, lambda item: self.inbox.put_nowait((session_id, item)))

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
        await self._do(actions)

    async def _dispatch(self, message: str | bytes, clock: Clock) -> list[Action]:
        core = self.core
        if isinstance(message, bytes):
            pcm = protocol.parse_binary(message)
            refused = core.audio_refused()
            if refused is not None:
                return refused
            if self.audio_meter is not None:
                refusal = await self.audio_meter.add(len(pcm) / core.config.sample_rate)
                if refusal is not None:
                    return core.on_quota(refusal)
                core.on_quota(None)
            if len(pcm) > BIG_FRAME_SAMPLES:
                return await asyncio.to_thread(core.feed, pcm, clock)
            return core.feed(pcm, clock)
        msg = protocol.parse_text(message)
        if isinstance(msg, protocol.ConfigMessage) and msg.session_id not in (None, core.session_id):
            return await self._resume(msg, clock) + self.core.on_config(msg)
        if isinstance(msg, protocol.AuthMessage):
            claims: Claims | None = None
            try:
                claims = self.ctx.guard.verify(self.ip, msg.token) if self.lease else None
            except AuthError as exc:
                return core.on_auth(None, exc.code, exc.message)
            return core.on_auth(claims)
        return core.on_text(msg, clock)

    async def _resume(self, msg: protocol.ConfigMessage, clock: Clock) -> list[Action]:
        """Take over a stored session, only for its owner; anyone else gets ``unknown_session``
        and neither the session nor its holder notices."""
        assert msg.session_id is not None
        store = self.ctx.store
        subject = self.lease.subject if self.lease else None
        stored = await store.load(msg.session_id)
        if stored is None or not stored.owned_by(subject, msg.resume_secret):
            metrics.SESSIONS_TOTAL.labels("unknown_resume").inc()
            return self.core.error(protocol.ErrorCode.UNKNOWN_SESSION,
                                   "that session is unknown, expired or not yours; this one goes on")
        claimed = await store.claim(msg.session_id, self.slot)
        if claimed is None:
            return self.core.error(protocol.ErrorCode.UNKNOWN_SESSION, "that session has just expired")
        logged = await store.log(msg.session_id)
        self.ctx.router.detach(self.core.session_id, self.slot)
        self.core, replay = SessionCore.resumed(
            self.ctx.settings, claimed, logged, msg.last_seq or 0, clock, silero=self.ctx.silero,
            queue_depth=lambda: self.ctx.queue_depth, lease=self.lease,
            resume_secret=None if self.lease else msg.resume_secret, gateway=self.ctx.name, holder=self.slot,
        )
        await self._attach(msg.session_id)
        self.writes.put_nowait(Note(f"{TAKEOVER} {self.slot}"))
        metrics.SESSIONS_TOTAL.labels("resumed").inc()
        return replay

    async def _driver(self) -> None:
        """Results and notes in, and the core's clock: ``tick`` at its next deadline."""
        while not self.closed:
            clock = _clock()
            self._armed = self.core.deadline(clock)
            wait = max(0.0, self._armed - clock.now)
            try:
                session_id, item = await asyncio.wait_for(self.inbox.get(), wait)
            except asyncio.TimeoutError:
                session_id, item = "", None
            async with self._lock:
                core, clock = self.core, _clock()
                if item is None:
                    actions = core.tick(clock)
                elif item is FENCED:
                    actions = core.taken_over()
                elif isinstance(item, _Failed):
                    actions = self._failed(item.action, clock)
                elif session_id != core.session_id:
                    continue  # for the session this connection left on resume
                elif isinstance(item, str):
                    actions = core.on_note(item, clock)
                else:
                    actions = core.on_result(item, clock)
                await self._do(actions)

    def _failed(self, action: Action, clock: Clock) -> list[Action]:
        if isinstance(action, QueueAudio):
            return self.core.queue_failed(action.job, clock)
        if isinstance(action, QueueTranslation) and action.job.utterance_index is not None:
            return self.core.translation_failed(action.job.utterance_index, clock)
        return []  # a log write or a note: the session goes on, a resume may miss it

    # -- actions --------------------------------------------------------------------------

    async def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._put(action.message)
            elif isinstance(action, Close):
                await self._close_socket(action.code, action.reason)
            else:
                self.writes.put_nowait(action)

    def _put(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self.send_queue.put_nowait(bus.dumps(message))
        except asyncio.QueueFull:
            metrics.REFUSED.labels("slow_consumer").inc()
            log.warning("a client is not reading its results; disconnecting it")
            for action in self.core.detach():
                self.writes.put_nowait(action)
            self.closed = True
            self._spawn(self.ws.close(1008, "client not reading its results"))

    async def _close_socket(self, code: int, reason: str) -> None:
        """Send what is queued (bounded: a stalled client is not waited for), then close."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.send_queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.send_queue.join(), CLOSE_FLUSH_SECONDS)
        self._spawn(self.ws.close(code, reason))

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _sender(self) -> None:
        while True:
            data = await self.send_queue.get()
            try:
                if data is None:
                    return
                await self.ws.send(data)
            except SocketClosed:
                return
            finally:
                self.send_queue.task_done()

    async def _writer(self) -> None:
        """The Redis adapter: the session's writes and jobs, one at a time, in order."""
        ctx = self.ctx
        renewed = time.monotonic()
        while (action := await self.writes.get()) is not None:
            session_id = self.core.session_id
            try:
                if isinstance(action, Write):
                    if not await ctx.store.write(session_id, self.slot, action.fields, action.message):
                        self.inbox.put_nowait((session_id, FENCED))
                elif isinstance(action, QueueAudio):
                    await ctx.redis.xadd(bus.AUDIO_JOBS, bus.encode_audio_job(action.job, action.audio))
                    metrics.JOB_AUDIO_SECONDS.labels(action.job.kind).inc(len(action.audio) / 16000)
                elif isinstance(action, QueueTranslation):
                    await ctx.redis.xadd(bus.TRANSCRIPTIONS, bus.encode_transcription_job(action.job))
                elif isinstance(action, Note):
                    await ctx.router.note(session_id, action.text)
                if self.lease is not None and time.monotonic() - renewed > RENEW_SECONDS:
                    renewed = time.monotonic()
                    await ctx.subject_sessions.renew(self.lease.subject, self.slot)
            except RETRYABLE as exc:
                log.warning("a session write failed (%s): %s", type(action).__name__, exc.__class__.__name__)
                self.inbox.put_nowait((session_id, _Failed(action)))

    async def going_away(self) -> None:
        """The gateway is stopping: tell the client so it reconnects elsewhere and resumes."""
        with contextlib.suppress(SocketClosed):
            await self.ws.close(1001, "gateway restarting; reconnect and resume")

    async def _close(self) -> None:
        """The socket is gone: persist the counters, stop reading results, let go of the slot.
        Results still on their way stay in the session's result stream for a resume."""
        async with self._lock:
            self.closed = True
            for action in self.core.detach():
                self.writes.put_nowait(action)
        self.writes.put_nowait(None)
        writer = self._tasks[1] if len(self._tasks) > 1 else None
        if writer is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), CLOSE_FLUSH_SECONDS * 4)
        for task in self._tasks:
            task.cancel()
        self.ctx.router.detach(self.core.session_id, self.slot)
        if self.lease is not None:
            with contextlib.suppress(*RETRYABLE):
                await self.ctx.subject_sessions.release(self.lease.subject, self.slot)
                if self.audio_meter is not None:
                    await self.audio_meter.flush()
        if self.core.phase is Phase.OPEN:
            metrics.SESSIONS_TOTAL.labels("detached").inc()


class _Failed:
    """A write or job the writer could not do: the core decides what it means."""

    def __init__(self, action: Action) -> None:
        self.action = action
