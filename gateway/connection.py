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
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from common import bus
from common.auth import AuthError, AuthLease, token_from_auth_message
from common.redis_conn import RETRYABLE
from gateway import metrics, protocol
from gateway.commits import CommitOptions, HypWord
from gateway.language_memory import StickyLanguage
from gateway.limits import Admission, AudioMeter
from gateway.ordering import OrdererOptions, ResultOrderer
from gateway.partials import OVERLOADED, PartialOptions, PartialScheduler
from gateway.ratelimit import TokenBucket
from gateway.segmenter import Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted, UtteranceReady
from gateway.service import GatewayContext
from gateway.sessions import SessionConfig
from gateway.turns import Action, CommitWords, TranscribeSpan, TurnCommitter, TurnEnded

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
RELEASE_WAIT_SECONDS = 0.5  # how long a resume waits for the previous holder to hand over


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
        self.turns = self._new_turns(0, "")
        self.orderer: ResultOrderer[dict[str, Any] | None] = ResultOrderer(OrdererOptions(s.result_wait_seconds))
        self.rate = TokenBucket(rate=s.max_messages_per_second, burst=2 * s.max_messages_per_second)
        self.send_queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=s.send_queue_size)
        self.started = time.monotonic()
        self.last_message = time.monotonic()
        self.audio_clock = 0.0  # seconds of client audio received
        self.utterance_times: dict[int, tuple[float, float]] = {}  # index -> (onset wall, ready wall)
        self.first_partial_seen: set[int] = set()
        self._gateway_translates: set[int] = set()  # units whose translation the gateway queues
        self.language = StickyLanguage()  # source_language auto: the session's confident language
        self._last_partial: bus.PartialResult | None = None  # language and worker of commits made at a pause
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

    def _new_turns(self, first_index: int, context: str) -> TurnCommitter:
        s = self.ctx.settings
        options = CommitOptions(
            pause_seconds=s.commit_pause_seconds,
            max_uncommitted_seconds=s.max_uncommitted_seconds,
            pause_from_hypothesis=s.pause_commit_text == "hypothesis",
        )
        return TurnCommitter(options, first_index, enabled=s.streaming_commits, context=context)

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
            self.language.reset()
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
        await self._execute(self.turns.poll(self.segmenter))
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
                audio_start = self.segmenter.current_audio_start
                if audio_start is None or self.segmenter.current_index != event.index:
                    audio_start = max(0.0, event.t - self.ctx.settings.pre_speech_buffer_seconds)
                self.turns.open_turn(audio_start, event.t)
                self._open_unit(self._wall_at(event.t))
            elif isinstance(event, SpeechEnded):
                self._put(protocol.Vad(event="speech_end", t=round(event.t, 3)).to_dict())
            elif isinstance(event, UtteranceReady):
                metrics.UTTERANCES.labels(event.reason).inc()
                continues = event.reason == "max_length" and self.segmenter.in_speech
                await self._execute(self.turns.on_turn_ready(event, continues=continues))
                if continues:
                    # A cut long turn goes on as the next unit: partials follow it.
                    self._open_unit(self._wall_at(event.end))
                else:
                    self.scheduler.close(self.scheduler.open_index if self.scheduler.open_index is not None else -1)

    def _open_unit(self, onset_wall: float) -> None:
        """The open (uncommitted) speech is unit ``turns.next_index`` from now on."""
        index = self.turns.next_index
        self.next_utterance = max(self.next_utterance, index + 1)
        self.utterance_times.setdefault(index, (onset_wall, 0.0))
        if self.scheduler.open_index is None:
            self.scheduler.open(index, time.monotonic())
        else:
            self.scheduler.retarget(index)

    def _wall_at(self, t: float) -> float:
        """Wall-clock time at which audio time ``t`` arrived (streaming in real time)."""
        return time.time() - max(0.0, self.audio_clock - t)

    async def _execute(self, actions: list[Action], partial: bus.PartialResult | None = None) -> None:
        """Carry out the turn committer's decisions (see gateway.turns), in order."""
        for action in actions:
            if isinstance(action, TranscribeSpan):
                await self._queue_span(action)
            elif isinstance(action, CommitWords):
                self._commit_words(action, partial or self._last_partial)
            elif isinstance(action, TurnEnded):
                self.next_utterance = self.turns.next_index
                if action.last_index is not None:
                    message = protocol.TurnEnd(
                        segment_id=bus.segment_id(self.session_id, action.last_index),
                        start=round(action.start, 3), end=round(action.end, 3),
                    ).to_dict()
                    self.orderer.add_turn_end(action.last_index, message, time.monotonic())
                    self._release(self.orderer.release(time.monotonic(), draining=self.ending))
                continue
            self._after_commit(action)

    def _after_commit(self, action: TranscribeSpan | CommitWords) -> None:
        metrics.COMMITS.labels(action.commit.reason).inc()
        # The open unit's index stays reserved while its turn goes on; a resume continues after it.
        self.next_utterance = self.turns.next_index + (1 if self.turns.in_turn else 0)
        if self.turns.in_turn and self.segmenter.in_speech:
            self._open_unit(self._wall_at(action.commit.end))

    async def _queue_span(self, span: TranscribeSpan) -> None:
        index, commit = span.index, span.commit
        speech_end_at = self._wall_at(commit.end)
        onset = self.utterance_times.get(index, (speech_end_at, 0.0))[0]
        self.utterance_times[index] = (onset, time.time())
        if self.ctx.overloaded:
            metrics.REFUSED.labels("overloaded").inc()
            self.error("overloaded", "the transcription queue is full; this speech was not transcribed",
                       segment_id=bus.segment_id(self.session_id, index))
            return
        # A span that starts inside speech repeats the overlap: the gateway removes it from the
        # text, and then queues the translation itself.
        overlaps = commit.audio_start < commit.start
        if overlaps and self.config.target_language:
            self._gateway_translates.add(index)
        job = bus.AudioJob(
            kind="final",
            session_id=self.session_id,
            utterance_index=index,
            segment_id=bus.segment_id(self.session_id, index),
            start=round(commit.start, 3),
            end=round(commit.end, 3),
            audio_start=round(commit.audio_start, 3),
            source_language=self.config.source_language,
            language_hint=self.language.hint,
            target_language=None if overlaps else self.config.target_language,
            prompt=span.prompt,
            word_timestamps=self.config.word_timestamps,
            commit=commit.reason if self.turns.enabled else None,
            created_at=time.time(),
            speech_end_at=speech_end_at,
            gateway=self.ctx.name,
        )
        if await self._xadd(job, span.audio):
            self.orderer.expect_final(index, time.monotonic())

    def _commit_words(self, action: CommitWords, partial: bus.PartialResult | None) -> None:
        """Agreed words of the partial hypotheses: a final now, from the gateway itself."""
        commit = action.commit
        text = commit.text
        wants_translation = bool(self.config.target_language and text)
        final = bus.FinalResult(
            session_id=self.session_id,
            segment_id=bus.segment_id(self.session_id, action.index),
            utterance_index=action.index,
            text=text,
            language=partial.language if partial else None,
            language_probability=partial.language_probability if partial else None,
            start=round(commit.start, 3),
            end=round(commit.end, 3),
            words=[bus.Word(word=w.text, start=w.start, end=w.end, probability=w.probability) for w in commit.words]
            if self.config.word_timestamps else None,
            worker=partial.worker if partial else "",
            speech_end_at=self._wall_at(commit.end),
            translation_expected=wants_translation,
            commit=commit.reason,
        )
        self.utterance_times.setdefault(action.index, (self._wall_at(commit.start), 0.0))
        self.orderer.expect_final(action.index, time.monotonic())
        if wants_translation:
            assert self.config.target_language is not None
            self._spawn(self._queue_translation(final, self.config.target_language))
        self._deliver(final)

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
        tail = self.turns.partial_audio(self.segmenter)
        if tail is None:
            self.scheduler.on_result(index, decision.partial_seq)
            return
        audio, audio_start = tail
        streaming = self.turns.enabled
        job = bus.AudioJob(
            kind="partial",
            session_id=self.session_id,
            utterance_index=index,
            partial_seq=decision.partial_seq,
            segment_id=bus.segment_id(self.session_id, index),
            start=round(audio_start, 3),
            end=round(self.segmenter.now, 3),
            audio_start=round(audio_start, 3),
            source_language=self.config.source_language,
            language_hint=self.language.hint,
            target_language=None,
            # The committed text as context, and word times for the commit policy.
            prompt=self.turns.prompt() if streaming else None,
            word_timestamps=streaming,
            created_at=time.time(),
            gateway=self.ctx.name,
        )
        metrics.PARTIAL_JOBS.labels("queued").inc()
        metrics.PARTIAL_AUDIO_SECONDS.observe(len(audio) / 16000)
        await self._xadd(job, audio)

    async def _xadd(self, job: bus.AudioJob, audio: np.ndarray) -> bool:
        try:
            await self.ctx.redis.xadd(bus.AUDIO_JOBS, bus.encode_audio_job(job, audio))
            metrics.JOB_AUDIO_SECONDS.labels(job.kind).inc(len(audio) / 16000)
            return True
        except RETRYABLE as exc:
            log.warning("could not queue %s job for %s: %s", job.kind, job.segment_id, exc)
            if job.kind == "final":
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
            self._on_partial(result)
            return
        if isinstance(result, bus.FinalResult):
            if result.commit is not None and self.turns.expects(result.utterance_index):
                result = self._committed_final(result)
            message = protocol.final_from_bus(result).to_dict()
            if self.orderer.add_final(result.utterance_index, message, now, result.translation_expected):
                self._observe_final(result)
                if self.config.source_language is None and result.text.strip():
                    self.language.observe(result.language, result.language_probability)
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

    def _on_partial(self, result: bus.PartialResult) -> None:
        self.scheduler.on_result(result.utterance_index, result.partial_seq)
        if result.skipped or self.closed:
            metrics.PARTIAL_JOBS.labels("skipped").inc()
            return
        self._last_partial = result
        words = None if result.words is None else [HypWord(w.word, w.start, w.end, w.probability) for w in result.words]
        actions, text = self.turns.on_partial(result.utterance_index, words, result.audio_end, result.text)
        for action in actions:
            assert isinstance(action, CommitWords)  # a hypothesis only ever commits its own words
            self._commit_words(action, result)
            self._after_commit(action)
        # What is left uncommitted is the partial of the next unit.
        index = self.turns.next_index if actions else result.utterance_index
        if not text:
            metrics.PARTIAL_JOBS.labels("empty" if text is not None else "late").inc()
            return
        if not self.orderer.add_partial(index, result.partial_seq):
            metrics.PARTIAL_JOBS.labels("late").inc()
            return  # never show a partial after its unit's final, nor an older one
        if index not in self.first_partial_seen:
            self.first_partial_seen.add(index)
            onset = self.utterance_times.get(index)
            if onset:
                metrics.FIRST_PARTIAL_LATENCY.observe(max(0.0, time.time() - onset[0]))
        metrics.PARTIALS_SENT.inc()
        shown = result.model_copy(update={"text": text, "segment_id": bus.segment_id(self.session_id, index)})
        self._put(protocol.realtime_from_bus(shown).to_dict())

    def _committed_final(self, result: bus.FinalResult) -> bus.FinalResult:
        """A final job's result for a committed span: without the overlap it repeated; its
        translation queued here when the gateway kept it back for that."""
        words = [HypWord(w.word, w.start, w.end, w.probability) for w in result.words] if result.words else None
        text, kept = self.turns.final_text(result.utterance_index, result.text, words)
        translate_here = result.utterance_index in self._gateway_translates
        self._gateway_translates.discard(result.utterance_index)
        update: dict[str, Any] = {"text": text}
        if kept is not None:
            update["words"] = [bus.Word(word=w.text, start=w.start, end=w.end, probability=w.probability) for w in kept]
        if translate_here and text.strip() and self.config.target_language:
            update["translation_expected"] = True
            result = result.model_copy(update=update)
            self._spawn(self._queue_translation(result, self.config.target_language))
            return result
        return result.model_copy(update=update)

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
        self.turns = self._new_turns(stored.next_utterance, stored.last_final)
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


