"""One client connection: protocol, segmenter, jobs out, results in, session state.

Everything here is per connection; the few things shared by all connections of a gateway
come in through :class:`gateway.service.GatewayContext`. The pure cores do the deciding
(``protocol`` parses, ``Segmenter`` cuts utterances, ``PartialScheduler`` decides when a
partial job goes, ``ResultOrderer`` puts finals and translations in utterance order); this
class only moves data between them, the socket and Redis.

Outgoing messages go through a bounded send queue drained by one sender task: a client that
stops reading fills it and is disconnected instead of growing the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from common import bus
from common.auth import AuthError, AuthLease, token_from_auth_message
from common.redis_conn import RETRYABLE
from gateway import metrics, protocol
from gateway.limits import Admission, AudioMeter
from gateway.ordering import OrdererOptions, ResultOrderer
from gateway.partials import OVERLOADED, PartialOptions, PartialScheduler
from gateway.ratelimit import TokenBucket
from gateway.segmenter import Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted, UtteranceReady
from gateway.service import GatewayContext
from gateway.sessions import SessionConfig

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
RELEASE_WAIT_SECONDS = 0.5  # how long a resume waits for the previous holder to hand over


@dataclass
class EarlyFinal:
    """An early final job in flight for an open utterance, keyed by the speech end it assumed."""

    end: float
    result: bus.FinalResult | None = None
    confirmed: bool = False


class Connection:
    def __init__(self, ctx: GatewayContext, ws: ServerConnection, admission: Admission | None = None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.admission = admission or Admission()
        self.ip = str(ws.remote_address[0]) if getattr(ws, "remote_address", None) else "unknown"
        self.lease: AuthLease | None = None
        self.audio_meter: AudioMeter | None = None
        self.slot = uuid.uuid4().hex  # this connection's place in the subject's session count
        s = ctx.settings
        self.session_id = uuid.uuid4().hex
        self.config = SessionConfig(sample_rate=s.sample_rate)
        self.seq = 0
        self.utterance_base = 0  # utterance indices continue across a resume
        self.last_final = ""
        self.next_utterance = 0  # index the next utterance of this session will get
        self.segmenter = self._new_segmenter()
        self.scheduler = self._new_scheduler()
        self.orderer: ResultOrderer[dict[str, Any] | None] = ResultOrderer(OrdererOptions(s.result_wait_seconds))
        self.rate = TokenBucket(rate=s.max_messages_per_second, burst=2 * s.max_messages_per_second)
        self.send_queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=s.send_queue_size)
        self.started = time.monotonic()
        self.last_message = time.monotonic()
        self.audio_clock = 0.0  # seconds of client audio received
        self.utterance_times: dict[int, tuple[float, float]] = {}  # index -> (onset wall, ready wall)
        self.first_partial_seen: set[int] = set()
        self.early: dict[int, EarlyFinal] = {}
        self.errors_sent: set[str] = set()
        self.end_requested = False  # the client sent ``end`` (or a limit ended the session)
        self.ending = False  # ...and its last utterance is queued: ``done`` may follow
        self.closed = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._done = asyncio.Event()  # a detached connection may let go of its session
        self.taken_over = False  # another connection resumed this session: it delivers from now on
        self._released = asyncio.Event()
        self._handed_over: list[int] = []  # finals the previous holder was still waiting for

    # -- set-up -------------------------------------------------------------------------

    def _new_segmenter(self) -> Segmenter:
        s = self.ctx.settings
        options = SegmenterOptions(
            sample_rate=self.config.sample_rate,
            webrtc_sensitivity=s.webrtc_sensitivity,
            silero_sensitivity=s.silero_sensitivity,
            silence_threshold_seconds=s.silence_threshold_seconds,
            pre_speech_buffer_seconds=s.pre_speech_buffer_seconds,
            max_segment_seconds=s.max_segment_seconds,
            min_speech_seconds=s.min_speech_seconds,
            use_silero=self.ctx.silero is not None,
        )
        return Segmenter(options, self.ctx.silero)

    def _new_scheduler(self) -> PartialScheduler:
        s = self.ctx.settings
        return PartialScheduler(
            PartialOptions(
                interval=s.stt_send_interval,
                # Partials give way first: skipped at half the depth at which finals are refused.
                max_queue_depth=max(1, s.max_queue_depth // 2),
                enabled=self.config.partials,
                inflight_timeout=3.0,
                # Speech is confirmed ~0.3 s after its onset: the first partial goes right then, so
                # a word is on screen within a second of speaking.
                first_after=0.0,
            )
        )

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
            metrics.REFUSED.labels(exc.code).inc()
            await self._refuse(exc.code, exc.message)
            return False
        assert claims is not None
        refusal = await self.ctx.subject_sessions.acquire(claims.subject, self.slot)
        if refusal is not None:
            metrics.REFUSED.labels(refusal.code).inc()
            await self._refuse(refusal.code, refusal.message)
            return False
        self.lease = AuthLease(claims, self.ctx.settings.token_expiry_grace_seconds)
        self.audio_meter = AudioMeter(self.ctx.audio_quota, claims.subject)
        return True

    async def _refuse(self, code: str, message: str) -> None:
        """Before the session starts: an error frame, then close 1008 with the code."""
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(protocol.Error(code=code, message=message).to_json())
            await self.ws.close(1008, code)

    async def run(self) -> None:
        if not await self._authenticate():
            return
        metrics.SESSIONS_TOTAL.labels("new").inc()
        await self.ctx.router.subscribe(self.session_id, self.slot, self._on_result, self._on_control)
        await self._save()
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"send-{self.session_id[:8]}"),
            asyncio.create_task(self._ticker(), name=f"tick-{self.session_id[:8]}"),
        ]
        self._send_ready()
        try:
            async for message in self.ws:
                self.last_message = time.monotonic()
                if not self.rate.take(self.last_message):
                    metrics.REFUSED.labels("rate_limited").inc()
                    self.error("rate_limited", "too many messages per second; this one was dropped")
                    continue
                await self._on_message(message)
                if self.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            await self._close()

    # -- client messages ----------------------------------------------------------------

    async def _on_message(self, message: str | bytes) -> None:
        try:
            if isinstance(message, bytes):
                await self._on_audio(protocol.parse_binary(message))
            else:
                await self._on_text(protocol.parse_text(message))
        except protocol.ProtocolError as exc:
            metrics.REFUSED.labels(exc.code).inc()
            self.error(exc.code, exc.message)

    async def _on_text(self, msg: protocol.ClientMessage) -> None:
        if isinstance(msg, protocol.PingMessage):
            self._put(protocol.Pong(id=msg.id, t=time.time()).to_dict())
        elif isinstance(msg, protocol.ConfigMessage):
            await self._on_config(msg)
        elif isinstance(msg, protocol.FlushMessage):
            await self._handle_events(self.segmenter.flush())
        elif isinstance(msg, protocol.EndMessage):
            await self._on_end()
        elif isinstance(msg, protocol.AuthMessage):
            await self._on_auth(msg.token)

    async def _on_auth(self, token: str) -> None:
        """A refreshed token extends the session; a bad one ends it (1008)."""
        if self.lease is None:
            self.error("auth_not_enabled", "this gateway does not require a token")
            return
        try:
            self.lease.refresh(self.ctx.guard.verify(self.ip, token))
        except AuthError as exc:
            metrics.REFUSED.labels(exc.code).inc()
            self.error(exc.code, exc.message)
            await self._wait_sent_queue()
            self.closed = True
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(1008, exc.code)

    async def _wait_sent_queue(self) -> None:
        """Let the sender flush what is queued (bounded: a stalled client is not waited for)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.send_queue.join(), 0.2)

    async def _on_config(self, msg: protocol.ConfigMessage) -> None:
        fields = msg.model_fields_set
        if msg.session_id is not None and msg.session_id != self.session_id:
            await self._resume(msg.session_id, msg.last_seq or 0)
        changed = False
        if "source_language" in fields:
            lang = msg.source_language
            self.config.source_language = None if lang in (None, "auto") else lang
            changed = True
        if "source_languages" in fields:
            self.config.source_languages = msg.source_languages
            changed = True
        if "target_language" in fields:
            self.config.target_language = msg.target_language
            changed = True
        if "partials" in fields and msg.partials is not None:
            self.config.partials = msg.partials
            self.scheduler.set_enabled(msg.partials)
            changed = True
        if "word_timestamps" in fields and msg.word_timestamps is not None:
            self.config.word_timestamps = msg.word_timestamps
            changed = True
        if "sample_rate" in fields and msg.sample_rate is not None and msg.sample_rate != self.config.sample_rate:
            self.config.sample_rate = msg.sample_rate
            self.segmenter.set_input_rate(msg.sample_rate)
            changed = True
        if changed:
            await self._save()
            self._send_ready()

    async def _on_audio(self, pcm: np.ndarray) -> None:
        if self.end_requested:
            self.error("ended", "audio after end is ignored")
            return
        if time.monotonic() - self.started > self.ctx.settings.max_session_seconds:
            self.error("session_too_long", "MAX_SESSION_SECONDS reached")
            await self._on_end()
            return
        seconds = len(pcm) / self.config.sample_rate
        if self.audio_meter is not None:
            refusal = await self.audio_meter.add(seconds)
            if refusal is not None:
                if refusal.code not in self.errors_sent:
                    self.errors_sent.add(refusal.code)
                    metrics.REFUSED.labels(refusal.code).inc()
                    self.error(refusal.code, refusal.message)
                return
            self.errors_sent.discard("audio_quota_exceeded")
        self.audio_clock += seconds
        events = await asyncio.to_thread(self.segmenter.feed, pcm) if len(pcm) > 16000 else self.segmenter.feed(pcm)
        await self._handle_events(events)
        await self._maybe_early_final()
        await self._maybe_partial()

    async def _on_end(self) -> None:
        if self.end_requested:
            return
        self.end_requested = True
        await self._handle_events(self.segmenter.flush())
        # Only now, with the last final job queued and expected, may the ticker send ``done``
        # once every expected result is out (or timed out).
        self.ending = True

    # -- segmenter events and jobs ------------------------------------------------------

    async def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                self._put(protocol.Vad(event="speech_start", t=round(event.t, 3)).to_dict())
                index = self.utterance_base + event.index
                self.next_utterance = max(self.next_utterance, index + 1)
                self.utterance_times[index] = (self._wall_at(event.t), 0.0)
                self.scheduler.open(index, time.monotonic())
            elif isinstance(event, SpeechEnded):
                self._put(protocol.Vad(event="speech_end", t=round(event.t, 3)).to_dict())
            elif isinstance(event, UtteranceReady):
                await self._queue_final(event)
                if event.reason == "max_length" and self.segmenter.in_speech:
                    # A cut long utterance goes on as the next index: partials follow it.
                    index = self.utterance_base + event.index + 1
                    self.next_utterance = max(self.next_utterance, index + 1)
                    self.utterance_times[index] = (self._wall_at(event.end), 0.0)
                    self.scheduler.open(index, time.monotonic())

    def _wall_at(self, t: float) -> float:
        """Wall-clock time at which audio time ``t`` arrived (streaming in real time)."""
        return time.time() - max(0.0, self.audio_clock - t)

    async def _maybe_early_final(self) -> None:
        """During the silence that may end an utterance, transcribe it already: if the speaker
        does not resume, the final is ready when the silence threshold elapses."""
        wait = self.ctx.settings.early_final_seconds
        end = self.segmenter.current_end
        if not wait or end is None or self.segmenter.now - end < wait or self.ctx.overloaded:
            return
        tentative = self.segmenter.tentative_utterance()
        if tentative is None:
            return
        index = self.utterance_base + tentative.index
        end = round(tentative.end, 3)
        sent = self.early.get(index)
        if sent is not None and sent.end == end:
            return  # already in flight for this end of speech
        if sent is not None:
            metrics.EARLY_FINALS.labels("wasted").inc()  # the speaker resumed: that one is stale
        job = self._final_job(tentative, index, speculative=True)
        if await self._xadd(job, tentative.audio):
            self.early[index] = EarlyFinal(end=end)
            metrics.EARLY_FINALS.labels("sent").inc()

    def _final_job(self, utt: UtteranceReady, index: int, *, speculative: bool = False) -> bus.AudioJob:
        now = time.time()
        return bus.AudioJob(
            kind="final",
            session_id=self.session_id,
            utterance_index=index,
            segment_id=bus.segment_id(self.session_id, index),
            start=round(utt.start, 3),
            end=round(utt.end, 3),
            source_language=self.config.source_language,
            source_languages=self.config.source_languages,
            target_language=self.config.target_language,
            prompt=self.last_final or None,
            word_timestamps=self.config.word_timestamps,
            created_at=now,
            speech_end_at=self._wall_at(utt.end),
            speculative=speculative,
            gateway=self.ctx.name,
        )

    async def _queue_final(self, utt: UtteranceReady) -> None:
        index = self.utterance_base + utt.index
        self.next_utterance = max(self.next_utterance, index + 1)
        metrics.UTTERANCES.labels(utt.reason).inc()
        self.scheduler.close(index)
        early = self.early.pop(index, None)
        if early is not None and early.end == round(utt.end, 3):
            # The speaker did not resume: the early final is this utterance's final.
            metrics.EARLY_FINALS.labels("used").inc()
            now = time.time()
            onset = self.utterance_times.get(index, (self._wall_at(utt.end), 0.0))[0]
            self.utterance_times[index] = (onset, now)
            self.orderer.expect_final(index, time.monotonic())
            early.confirmed = True
            self.early[index] = early
            if early.result is not None:
                self._accept_early(early.result)
            return
        if early is not None:
            metrics.EARLY_FINALS.labels("wasted").inc()
        if self.ctx.overloaded:
            metrics.REFUSED.labels("overloaded").inc()
            self.error("overloaded", "the transcription queue is full; this utterance was not transcribed",
                       segment_id=bus.segment_id(self.session_id, index))
            return
        job = self._final_job(utt, index)
        onset = self.utterance_times.get(index, (job.speech_end_at or job.created_at, 0.0))[0]
        self.utterance_times[index] = (onset, job.created_at)
        if await self._xadd(job, utt.audio):
            self.orderer.expect_final(index, time.monotonic())

    async def _maybe_partial(self) -> None:
        decision = self.scheduler.poll(
            time.monotonic(), self.ctx.queue_depth, speech_end=self.segmenter.current_end
        )
        if not decision.send:
            if decision.reason == OVERLOADED:
                metrics.PARTIAL_JOBS.labels("skipped_overloaded").inc()
            return
        assert decision.index is not None and decision.partial_seq is not None
        index = decision.index
        audio = self.segmenter.current_audio()
        if audio is None:
            self.scheduler.on_result(index, decision.partial_seq)
            return
        start = self.segmenter.current_start or 0.0
        job = bus.AudioJob(
            kind="partial",
            session_id=self.session_id,
            utterance_index=index,
            partial_seq=decision.partial_seq,
            segment_id=bus.segment_id(self.session_id, index),
            start=round(start, 3),
            end=round(self.segmenter.now, 3),
            source_language=self.config.source_language,
            source_languages=self.config.source_languages,
            target_language=None,
            created_at=time.time(),
            gateway=self.ctx.name,
        )
        metrics.PARTIAL_JOBS.labels("queued").inc()
        await self._xadd(job, audio)

    async def _xadd(self, job: bus.AudioJob, audio: np.ndarray) -> bool:
        try:
            await self.ctx.redis.xadd(bus.AUDIO_JOBS, bus.encode_audio_job(job, audio))
            return True
        except RETRYABLE as exc:
            log.warning("could not queue %s job for %s: %s", job.kind, job.segment_id, exc)
            if job.speculative:
                pass  # the real final job follows when the utterance ends
            elif job.kind == "final":
                self.error("unavailable", "the transcription queue is unreachable; utterance lost",
                           segment_id=job.segment_id)
            else:
                self.scheduler.on_result(job.utterance_index, job.partial_seq)
            return False

    # -- results --------------------------------------------------------------------------

    def _on_result(self, result: bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult) -> None:
        if self.taken_over:
            return
        if isinstance(result, bus.FinalResult) and result.queued_at:
            overhead = time.time() - result.queued_at - result.inference_seconds
            metrics.PIPELINE_OVERHEAD.observe(max(0.0, overhead))
        self._deliver(result)
        if self.closed and self.orderer.idle:
            self._done.set()  # detached and nothing left to log: stop holding the session

    def _deliver(self, result: bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult) -> None:
        now = time.monotonic()
        if isinstance(result, bus.PartialResult):
            self.scheduler.on_result(result.utterance_index, result.partial_seq)
            if result.skipped or not result.text.strip() or self.closed:
                metrics.PARTIAL_JOBS.labels("skipped" if result.skipped else "empty").inc()
                return
            if not self.orderer.add_partial(result.utterance_index, result.partial_seq):
                metrics.PARTIAL_JOBS.labels("late").inc()
                return  # never show a partial after its utterance's final, nor an older one
            if result.utterance_index not in self.first_partial_seen:
                self.first_partial_seen.add(result.utterance_index)
                onset = self.utterance_times.get(result.utterance_index)
                if onset:
                    metrics.FIRST_PARTIAL_LATENCY.observe(max(0.0, time.time() - onset[0]))
            metrics.PARTIALS_SENT.inc()
            self._put(protocol.realtime_from_bus(result).to_dict())
            return
        if isinstance(result, bus.FinalResult) and result.speculative:
            if result.utterance_index in self._handed_over:
                # Confirmed by the connection that held the session before this one resumed it.
                self._handed_over.remove(result.utterance_index)
                self._accept_early(result)
                return
            early = self.early.get(result.utterance_index)
            if early is None or early.end != result.end or early.result is not None:
                return  # stale (the speaker resumed) or a redelivered copy
            early.result = result
            if early.confirmed:
                self._accept_early(result)
            return
        if isinstance(result, bus.FinalResult):
            message = protocol.final_from_bus(result).to_dict()
            if self.orderer.add_final(result.utterance_index, message, now, result.translation_expected):
                self._observe_final(result)
        elif isinstance(result, bus.TranslationResult):
            message = protocol.translation_from_bus(result).to_dict()
            self.orderer.add_translation(result.utterance_index, message, now)
        else:
            if result.utterance_index is not None:
                # The error stands in for the missing result: the orderer stops waiting for it.
                if result.code.startswith("transcription"):
                    self.orderer.add_final(result.utterance_index, None, now)
                else:
                    self.orderer.add_translation(result.utterance_index, None, now)
            if result.code not in self.errors_sent:  # one notice per session and code
                self.errors_sent.add(result.code)
                self.error(result.code, result.message, segment_id=result.segment_id)
        self._release(self.orderer.release(now, draining=self.ending))

    def _accept_early(self, result: bus.FinalResult) -> None:
        """A confirmed early final: deliver it as the final, and have it translated now."""
        self.early.pop(result.utterance_index, None)
        wants_translation = bool(self.config.target_language and result.text.strip())
        if wants_translation:
            assert self.config.target_language is not None
            self._spawn(self._queue_translation(result, self.config.target_language))
        self._deliver(result.model_copy(update={"speculative": False, "translation_expected": wants_translation}))

    async def _queue_translation(self, result: bus.FinalResult, target: str) -> None:
        job = bus.TranscriptionJob(
            session_id=result.session_id, segment_id=result.segment_id, utterance_index=result.utterance_index,
            text=result.text, source_language=result.language, target_language=target,
            created_at=time.time(), speech_end_at=result.speech_end_at,
        )
        try:
            await self.ctx.redis.xadd(bus.TRANSCRIPTIONS, bus.encode_transcription_job(job))
        except RETRYABLE as exc:
            log.warning("could not queue the translation of %s: %s", result.segment_id, exc)
            self.orderer.add_translation(result.utterance_index, None, time.monotonic())

    def _observe_final(self, result: bus.FinalResult) -> None:
        # The utterance is done: its timing entries go, so a long session does not accumulate them.
        times = self.utterance_times.pop(result.utterance_index, None)
        self.first_partial_seen.discard(result.utterance_index)
        now = time.time()
        if result.speech_end_at:
            metrics.FINAL_LATENCY.observe(max(0.0, now - result.speech_end_at))
        if times and times[1]:
            metrics.FINAL_LATENCY_AFTER_THRESHOLD.observe(max(0.0, now - times[1]))

    def _release(self, messages: list[dict[str, Any] | None]) -> None:
        for message in messages:
            if message is None:
                continue
            if message["type"] == "final":
                self.last_final = message["text"] or self.last_final
            metrics.RESULTS_SENT.labels(message["type"]).inc()
            sent = self._put(message)
            self._spawn(self._record(sent))

    async def _record(self, message: dict[str, Any] | None) -> None:
        if message is None or self.taken_over:
            return
        try:
            await self.ctx.store.record(
                self.session_id, message, next_seq=self.seq + 1,
                next_utterance=self.next_utterance,
                last_final=self.last_final if message["type"] == "final" else None,
            )
        except RETRYABLE as exc:
            log.warning("session log write failed for %s: %s", self.session_id, exc)

    def _on_control(self, message: str) -> None:
        """Notes between the connections holding one session, on this or another gateway."""
        kind, holder, detail = [*message.split(" ", 2), "", ""][:3]
        if holder == self.slot:
            return
        if kind == "takeover" and not self.taken_over:
            # Another connection resumed this session: it delivers and logs from now on. Hand
            # it the finals still on their way, and stop holding the session.
            self.taken_over = True
            pending = ",".join(str(i) for i in self.orderer.pending_finals())
            self._spawn(self.ctx.router.publish_control(self.session_id, f"released {self.slot} {pending}"))
            self._done.set()
            if not self.closed:
                self.closed = True
                self._spawn(self.ws.close(1001, "session resumed on another connection"))
        elif kind == "released":
            self._handed_over = [int(i) for i in detail.split(",") if i.strip().isdigit()]
            self._released.set()

    # -- output -----------------------------------------------------------------------------

    def _put(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Queue a message for the client, numbering it; None if the client is gone."""
        if message["type"] not in ("pong", "ready"):
            self.seq += 1
            message["seq"] = self.seq
        if self.closed:
            return message  # still logged for a resume
        try:
            self.send_queue.put_nowait(bus.dumps(message))
        except asyncio.QueueFull:
            metrics.REFUSED.labels("slow_consumer").inc()
            log.warning("session %s is not reading; disconnecting", self.session_id)
            self.closed = True
            self._spawn(self.ws.close(1008, "client not reading its results"))
        return message

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, holding a reference until it ends."""
        future = asyncio.ensure_future(coro)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def error(self, code: str, message: str, *, segment_id: str | None = None) -> None:
        self._put(protocol.Error(code=code, message=message, segment_id=segment_id).to_dict())

    def _send_ready(self) -> None:
        c = self.config
        self._put(protocol.Ready(
            session_id=self.session_id, sample_rate=c.sample_rate, source_language=c.source_language or "auto",
            target_language=c.target_language, partials=c.partials,
            silence_threshold_seconds=self.ctx.settings.silence_threshold_seconds, last_seq=self.seq,
        ).to_dict())

    async def _sender(self) -> None:
        while True:
            data = await self.send_queue.get()
            try:
                if data is None:
                    return
                await self.ws.send(data)
            except ConnectionClosed:
                return
            finally:
                self.send_queue.task_done()

    async def _ticker(self) -> None:
        """Time-driven work: ordering timeouts, idle timeout, and ``done`` after ``end``."""
        s = self.ctx.settings
        renewed = time.monotonic()
        while not self.closed:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            if self.lease is not None:
                state = self.lease.poll(time.time())
                if state == "expired":
                    self.error("token_expired", "the token expired: send {type: auth, token} to go on")
                elif state == "close":
                    await self._wait_sent_queue()
                    self.closed = True
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.close(1008, "token_expired")
                    return
                if now - renewed > 20:
                    renewed = now
                    with contextlib.suppress(*RETRYABLE):
                        await self.ctx.subject_sessions.renew(self.lease.subject, self.slot)
            self._release(self.orderer.release(now, draining=self.ending))
            if not self.end_requested:
                await self._maybe_partial()  # partials stay on time when audio frames are sparse
            if self.ending and self.orderer.idle:
                self._put(protocol.Done().to_dict())
                await self.send_queue.put(None)
                with contextlib.suppress(ConnectionClosed):
                    await self._wait_sent()
                    await self.ws.close(1000, "done")
                return
            if not self.end_requested and now - self.last_message > s.idle_timeout_seconds:
                self.error("idle_timeout", f"no message for {s.idle_timeout_seconds:.0f}s")
                await self._on_end()

    async def _wait_sent(self) -> None:
        for task in self._tasks[:1]:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5)

    # -- resume and teardown --------------------------------------------------------------

    async def _resume(self, session_id: str, last_seq: int) -> None:
        stored = await self.ctx.store.load(session_id)
        if stored is None:
            metrics.SESSIONS_TOTAL.labels("unknown_resume").inc()
            self.error("unknown_session", f"session {session_id[:64]} is unknown or expired; a new one was started")
            return
        await self.ctx.router.unsubscribe(self.session_id, self.slot)
        self.session_id = session_id
        self.config = stored.config
        self.segmenter = self._new_segmenter()
        self.scheduler = self._new_scheduler()
        self.orderer = ResultOrderer(OrdererOptions(self.ctx.settings.result_wait_seconds))
        self.utterance_base = stored.next_utterance
        self.next_utterance = stored.next_utterance
        self.last_final = stored.last_final
        await self.ctx.router.subscribe(session_id, self.slot, self._on_result, self._on_control)
        receivers = await self.ctx.router.publish_control(session_id, f"takeover {self.slot}")
        # Anyone else holding the session (here, or on another gateway) hands over first: it
        # stops logging and says which finals are still on their way. A dead holder says nothing.
        if receivers - 1 + self.ctx.router.local_holders(session_id) - 1 > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._released.wait(), RELEASE_WAIT_SECONDS)
        stored = await self.ctx.store.load(session_id) or stored
        replay = await self.ctx.store.replay(session_id, last_seq)
        self.seq = max(stored.next_seq - 1, last_seq)
        metrics.SESSIONS_TOTAL.labels("resumed").inc()
        now = time.monotonic()
        for message in replay:
            # Through the orderer, so a live copy of a replayed result is dropped as a duplicate.
            index = int(str(message.get("segment_id", ":-1")).rsplit(":", 1)[1])
            if message.get("type") == "final":
                self.orderer.add_final(index, message, now)
            elif message.get("type") == "translation":
                self.orderer.add_translation(index, message, now)
            self.orderer.release(now)
            try:
                self.send_queue.put_nowait(bus.dumps(message))
            except asyncio.QueueFull:
                break
        for index in self._handed_over:
            self.orderer.expect_final(index, now)
        await self._save()

    async def _save(self) -> None:
        await self.ctx.store.save(
            self.session_id, self.config, next_seq=self.seq + 1,
            next_utterance=self.next_utterance,
            gateway=self.ctx.name, last_final=self.last_final,
        )

    async def going_away(self) -> None:
        """The gateway is stopping: tell the client so it reconnects elsewhere and resumes."""
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(1001, "gateway restarting; reconnect and resume")

    async def _close(self) -> None:
        self.closed = True
        for task in self._tasks:
            task.cancel()
        if self.lease is not None:
            with contextlib.suppress(*RETRYABLE):
                await self.ctx.subject_sessions.release(self.lease.subject, self.slot)
                if self.audio_meter is not None:
                    await self.audio_meter.flush()
        if not self.taken_over:  # the new holder owns the stored counters now
            with contextlib.suppress(*RETRYABLE):
                await self.ctx.store.touch(
                    self.session_id, next_seq=self.seq + 1,
                    next_utterance=self.next_utterance,
                )
        if self.end_requested or self.orderer.idle or self.taken_over:
            await self.ctx.router.unsubscribe(self.session_id, self.slot)
            return
        # Results of utterances already queued keep arriving: log them (with seqs) for a
        # resume, for a bounded time, unless another gateway takes the session over.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._done.wait(), self.ctx.settings.result_wait_seconds)
        await self.ctx.router.unsubscribe(self.session_id, self.slot)
