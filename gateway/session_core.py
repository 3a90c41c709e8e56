"""One session's state machine: a pure core, events in, actions out, the clock passed in.

:class:`SessionCore` decides everything a session does; :class:`gateway.connection.Connection`
only carries its inputs (client messages, audio, results read from the session's result
stream, control notes, the time) and executes the actions it returns (send to the client,
write the session's state and log, queue jobs, close). No asyncio, no Redis, no socket here:
the same inputs give the same actions, so it is tested without sockets.

State:

* ``phase`` (:class:`Phase`) says where the session is; nothing else does.
* ``units``: one :class:`Unit` record per utterance in progress (timings for the latency
  metrics, whether a partial was shown). It goes when the unit's
  final is sent. A unit is what gets a ``segment_id``; streaming commits (issue 14) make
  several units per turn.
* ``seq`` is the number of the last message sent; the stored counters are only written by it.
* the segmenter (cuts audio into utterances), the partial scheduler and the result orderer
  (utterance order, exactly once, bounded waits) are the pure cores it drives.
* ``language`` (:class:`gateway.language_evidence.SessionLanguage`): what the session's
  results have shown of its language (pinned when the client named one). Its confident
  language goes out with every job as ``language_hint``; while there is none, the streaming
  commits hold back a piece of a turn too short to detect a language on (``_hold``).

Resume: :meth:`SessionCore.resumed` builds the core of a session taken over from storage
(the logged messages and the stored counters); results still on their way are read again from
the session's result stream, and what the log shows as sent is dropped as a duplicate.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from common import bus
from common.auth import AuthLease, Claims
from common.settings import GatewaySettings
from gateway import metrics, protocol
from gateway.commits import CommitOptions, HypWord
from gateway.language_evidence import SessionLanguage, hold_for_more_audio
from gateway.limits import Refusal
from gateway.ordering import FINAL, TRANSLATION, OrdererOptions, ResultOrderer
from gateway.partials import OVERLOADED, PartialOptions, PartialScheduler
from gateway.ratelimit import TokenBucket
from gateway.segmenter import SR, Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted, UtteranceReady
from gateway.session_actions import Action, Clock, Close, QueueAudio, QueueTranslation, Send, Write
from gateway.sessions import SessionConfig, StoredSession
from gateway.turns import Action as TurnAction
from gateway.turns import CommitWords, TranscribeSpan, TurnCommitter, TurnEnded
from gateway.vad import SileroVad

log = logging.getLogger(__name__)

Result = bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult
TAKEOVER = "takeover"


class Phase(enum.Enum):
    OPEN = "open"  # taking audio
    ENDING = "ending"  # no more audio; ``done`` once every expected result is out
    DONE = "done"  # ``done`` sent, closing with 1000
    TAKEN_OVER = "taken_over"  # another connection resumed the session and delivers from now on
    CLOSED = "closed"  # the socket is gone or was closed by a limit


@dataclass
class Unit:
    """One committed piece of a turn (streaming commits, issue 14), from its speech to its final."""

    index: int
    onset_wall: float
    queued_wall: float = 0.0  # its final job went, or its words were committed
    partial_shown: bool = False
    speech_seconds: float | None = None  # speech in its span, pre-roll left out (language evidence)


class SessionCore:
    def __init__(
        self,
        settings: GatewaySettings,
        session_id: str,
        clock: Clock,
        *,
        config: SessionConfig | None = None,
        silero: SileroVad | None = None,
        queue_depth: Callable[[], int] = lambda: 0,
        lease: AuthLease | None = None,
        resume_secret: str | None = None,
        holder: str = "",
    ) -> None:
        s = settings
        self.settings = settings
        self.session_id = session_id
        self.config = config or SessionConfig(sample_rate=s.sample_rate)
        self.phase = Phase.OPEN
        self.seq = 0
        self.base = 0  # index of this connection's first unit (indices go on across a resume)
        self.last_final = ""
        self.units: dict[int, Unit] = {}
        self.lease = lease
        self.resume_secret = resume_secret
        self.holder = holder  # the connection driving this core (its takeover notes are its own)
        # A resumed core reads its stream from the start: takeover notes count only after its own.
        self._takeovers_count = True
        self._silero = silero
        self._queue_depth = queue_depth
        self.segmenter = self._new_segmenter()
        self.scheduler = self._new_scheduler()
        self.orderer: ResultOrderer[dict[str, Any] | None] = ResultOrderer(OrdererOptions(s.result_wait_seconds))
        self.rate = TokenBucket(rate=s.max_messages_per_second, burst=2 * s.max_messages_per_second)
        # Dropped messages a client may cause before it is closed (1008): five seconds' worth
        # of its allowance in a burst, so a client that overshoots briefly is only told.
        self.violations = TokenBucket(rate=s.max_messages_per_second, burst=5 * s.max_messages_per_second)
        self.started = clock.now
        self.last_message = clock.now
        self.audio_clock = 0.0  # seconds of client audio received
        self.errors_sent: set[str] = set()
        self._queued_next = 0  # one past the highest index whose final job went (or was refused)
        self.turns = self._new_turns(0, "")
        self.language = SessionLanguage.for_source(self.config.source_language)
        self._gateway_translates: set[int] = set()  # units whose translation the gateway queues
        self._last_partial: bus.PartialResult | None = None  # language and worker of pause commits
        self._floor = 0  # finals below this were sent by an earlier holder (resume)
        # Samples [lo, hi) of this core's segmenter clock that it appended, contiguously, to the
        # session's audio stream for partials by reference (``_partial_by_reference``).
        self._appended: tuple[int, int] | None = None

    @classmethod
    def resumed(
        cls, settings: GatewaySettings, stored: StoredSession, logged: list[dict[str, Any]], last_seq: int,
        clock: Clock, **kw: Any,
    ) -> tuple[SessionCore, list[Action]]:
        """The core of a session taken over from storage, and the replay for the client."""
        core = cls(settings, stored.session_id, clock, config=stored.config, **kw)
        core.base = core._queued_next = stored.next_utterance
        core._takeovers_count = False
        core._floor = stored.delivered_below
        core.last_final = stored.last_final
        core.turns = core._new_turns(stored.next_utterance, stored.last_final)
        max_logged = max((int(m.get("seq", 0)) for m in logged), default=0)
        core.seq = max(stored.next_seq - 1, last_seq, max_logged)
        sent_finals: set[int] = set()
        for message in logged:
            index = _index(message)
            if index is not None:
                kind = TRANSLATION if message["type"] == "translation" else FINAL
                core.orderer.mark_sent(index, kind)
                if kind == FINAL:
                    sent_finals.add(index)
        # Finals the previous holder queued and did not send: read again from the result stream.
        for index in range(stored.delivered_below, stored.next_utterance):
            if index not in sent_finals:
                core.orderer.expect_final(index, clock.now)
        replay = [Send(m, replay=True) for m in logged if int(m.get("seq", 0)) > last_seq]
        return core, [*replay, core._ready()]

    # -- set-up -------------------------------------------------------------------------

    def _new_segmenter(self) -> Segmenter:
        s = self.settings
        return Segmenter(SegmenterOptions(
            sample_rate=self.config.sample_rate, webrtc_sensitivity=s.webrtc_sensitivity,
            silero_sensitivity=s.silero_sensitivity, silence_threshold_seconds=s.silence_threshold_seconds,
            pre_speech_buffer_seconds=s.pre_speech_buffer_seconds, max_segment_seconds=s.max_segment_seconds,
            min_speech_seconds=s.min_speech_seconds, use_silero=self._silero is not None,
        ), self._silero)

    def _new_turns(self, first_index: int, context: str) -> TurnCommitter:
        s = self.settings
        options = CommitOptions(
            pause_seconds=s.commit_pause_seconds,
            max_uncommitted_seconds=s.max_uncommitted_seconds,
            pause_from_hypothesis=s.pause_commit_text == "hypothesis",
        )
        return TurnCommitter(options, first_index, enabled=s.streaming_commits, context=context)

    def _new_scheduler(self) -> PartialScheduler:
        s = self.settings
        return PartialScheduler(PartialOptions(
            interval=s.stt_send_interval,
            # Partials give way first: skipped at half the depth at which finals are refused.
            max_queue_depth=max(1, s.max_queue_depth // 2),
            enabled=self.config.partials, inflight_timeout=3.0,
            # Speech is confirmed ~0.3 s after its onset: the first partial goes right then.
            first_after=0.0,
        ))

    def start(self) -> list[Action]:
        return [self._ready()]

    # -- inputs: the client ---------------------------------------------------------------

    def admit(self, clock: Clock) -> tuple[bool, list[Action]]:
        """A client message arrived: whether to handle it (rate limit), and what to answer if
        not. Each dropped message is answered; a burst of them closes the session with 1008."""
        self.last_message = clock.now
        if self.rate.take(clock.now):
            return True, []
        metrics.REFUSED.labels("rate_limited").inc()
        if not self.violations.take(clock.now):
            self.phase = Phase.CLOSED
            return False, [*self._detach(), Close(1008, "rate_limited")]
        return False, self.error(protocol.ErrorCode.RATE_LIMITED, "too many messages per second; this one was dropped")

    def on_text(self, msg: protocol.ClientMessage, clock: Clock) -> list[Action]:
        if isinstance(msg, protocol.PingMessage):
            return [Send(protocol.Pong(id=msg.id, t=clock.wall).to_dict())]
        if isinstance(msg, protocol.ConfigMessage):
            return self.on_config(msg)
        if isinstance(msg, protocol.FlushMessage):
            return self.on_segments(self.segmenter.flush(), clock)
        if isinstance(msg, protocol.EndMessage):
            return self.end(clock)
        return []  # auth messages are verified by the shell and come in as on_auth

    def on_config(self, msg: protocol.ConfigMessage) -> list[Action]:
        fields = msg.model_fields_set
        c = self.config
        changed = False
        if "source_language" in fields:
            c.source_language = None if msg.source_language in (None, "auto") else msg.source_language
            self.language = SessionLanguage.for_source(c.source_language)
            changed = True
        if "source_languages" in fields:
            c.source_languages = msg.source_languages  # [] was normalised to None: the deployment's set
            self.language = SessionLanguage.for_source(c.source_language)  # evidence about another set
            changed = True
        if "target_language" in fields:
            c.target_language = msg.target_language
            changed = True
        if "partials" in fields and msg.partials is not None:
            c.partials = msg.partials
            self.scheduler.set_enabled(msg.partials)
            changed = True
        if "word_timestamps" in fields and msg.word_timestamps is not None:
            c.word_timestamps = msg.word_timestamps
            changed = True
        if "sample_rate" in fields and msg.sample_rate is not None and msg.sample_rate != c.sample_rate:
            c.sample_rate = msg.sample_rate
            self.segmenter.set_input_rate(msg.sample_rate)
            changed = True
        return [Write({"config": c}), self._ready()] if changed else []

    def on_auth(self, claims: Claims | None, code: str = "", message: str = "") -> list[Action]:
        """A refreshed token (verified by the shell); None: it was refused with ``code``."""
        if self.lease is None:
            return self.error("auth_not_enabled", "this gateway does not require a token")
        if claims is not None and claims.subject == self.lease.subject:
            self.lease.refresh(claims)
            return []
        if claims is not None:
            code, message = "token_subject_changed", "a refresh token must be for the same subject"
        metrics.REFUSED.labels(code).inc()
        out = self.error(code, message)
        self.phase = Phase.CLOSED
        return [*out, *self._detach(), Close(1008, code)]

    def on_quota(self, refusal: Refusal | None) -> list[Action]:
        """The audio quota's answer for the frame about to be fed (one notice per code)."""
        if refusal is None:
            self.errors_sent.discard("audio_quota_exceeded")
            return []
        if refusal.code in self.errors_sent:
            return []
        self.errors_sent.add(refusal.code)
        metrics.REFUSED.labels(refusal.code).inc()
        return self.error(refusal.code, refusal.message)

    def audio_refused(self) -> list[Action] | None:
        """The error for audio the session no longer takes, or None if it takes it."""
        if self.phase is Phase.OPEN:
            return None
        return self.error("ended", "audio after end is ignored") if self.phase is Phase.ENDING else []

    def feed(self, pcm: np.ndarray, clock: Clock) -> list[Action]:
        """Client audio. May be run in a worker thread for a big frame: the shell never runs
        anything else on this core meanwhile."""
        refused = self.audio_refused()
        if refused is not None:
            return refused
        self.audio_clock += len(pcm) / self.config.sample_rate
        out = self.on_segments(self.segmenter.feed(pcm), clock)
        out += self._run(self.turns.poll(self.segmenter, self._hold), clock)
        out += self._maybe_partial(clock)
        return out

    def _hold(self, speech_seconds: float) -> bool:
        """Asked before a pause or agreement commit inside a turn: keep this piece uncommitted
        (the session's language is not known yet, and the piece is too short to detect it)."""
        return hold_for_more_audio(self.language, speech_seconds, turn_ended=False)

    def _observe_language(self, language: str | None, probability: float | None, speech_seconds: float,
                          scope: str | None) -> None:
        """One more result's detection (source_language auto only: a pinned session has none)."""
        if self.config.source_language is None:
            self.language = self.language.observe(language, probability, speech_seconds, scope)

    def end(self, clock: Clock) -> list[Action]:
        """No more audio (``end``, or a limit): the last final is queued, then ``done`` follows."""
        if self.phase is not Phase.OPEN:
            return []
        out = self.on_segments(self.segmenter.flush(), clock)
        self.phase = Phase.ENDING
        return out + self._release(clock)

    def detach(self) -> list[Action]:
        """The socket is gone: nothing more is sent. Results still on their way stay in the
        session's result stream for whoever resumes it."""
        if self.phase in (Phase.CLOSED, Phase.TAKEN_OVER):
            return []
        self.phase = Phase.CLOSED
        return self._detach()

    def _detach(self) -> list[Action]:
        return [Write(self._counters())]

    # -- inputs: segmenter events and jobs ---------------------------------------------

    def on_segments(self, events: list[Any], clock: Clock) -> list[Action]:
        out: list[Action] = []
        for event in events:
            if isinstance(event, SpeechStarted):
                out += self._send(protocol.Vad(event="speech_start", t=round(event.t, 3)).to_dict())
                audio_start = self.segmenter.current_audio_start
                if audio_start is None or self.segmenter.current_index != event.index:
                    audio_start = max(0.0, event.t - self.settings.pre_speech_buffer_seconds)
                self.turns.open_turn(audio_start, event.t)
                self._open_unit(self._wall_at(event.t, clock), clock)
            elif isinstance(event, SpeechEnded):
                out += self._send(protocol.Vad(event="speech_end", t=round(event.t, 3)).to_dict())
            elif isinstance(event, UtteranceReady):
                metrics.UTTERANCES.labels(event.reason).inc()
                continues = event.reason == "max_length" and self.segmenter.in_speech
                out += self._run(self.turns.on_turn_ready(event, continues=continues), clock)
                if continues:
                    # A cut long turn goes on as the next unit: partials follow it.
                    self._open_unit(self._wall_at(event.end, clock), clock)
                elif self.scheduler.open_index is not None:
                    self.scheduler.close(self.scheduler.open_index)
        return out

    def _open_unit(self, onset_wall: float, clock: Clock) -> None:
        """The open (uncommitted) speech is unit ``turns.next_index`` from now on."""
        index = self.turns.next_index
        self.units.setdefault(index, Unit(index, onset_wall))
        if self.scheduler.open_index is None:
            self.scheduler.open(index, clock.now)
        else:
            self.scheduler.retarget(index)

    def _wall_at(self, t: float, clock: Clock) -> float:
        """Wall-clock time at which audio time ``t`` arrived (streaming in real time)."""
        return clock.wall - max(0.0, self.audio_clock - t)

    def _run(self, actions: list[TurnAction], clock: Clock, partial: bus.PartialResult | None = None) -> list[Action]:
        """Carry out the turn committer's decisions (see gateway.turns), in order."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, TurnEnded):
                if action.last_index is not None:
                    message = protocol.TurnEnd(
                        segment_id=bus.segment_id(self.session_id, action.last_index),
                        start=round(action.start, 3), end=round(action.end, 3),
                    ).to_dict()
                    self.orderer.add_turn_end(action.last_index, message, clock.now)
                    out += self._release(clock)
                continue
            self._queued_next = max(self._queued_next, action.index + 1)
            metrics.COMMITS.labels(action.commit.reason).inc()
            if isinstance(action, TranscribeSpan):
                out += self._queue_span(action, clock)
            else:
                out += self._commit_words(action, partial or self._last_partial, clock)
            if self.turns.in_turn and self.segmenter.in_speech:
                self._open_unit(self._wall_at(action.commit.end, clock), clock)
        return out

    def _queue_span(self, span: TranscribeSpan, clock: Clock) -> list[Action]:
        index, commit = span.index, span.commit
        speech_end_at = self._wall_at(commit.end, clock)
        unit = self.units.setdefault(index, Unit(index, speech_end_at))
        unit.queued_wall = clock.wall
        unit.speech_seconds = span.speech_seconds
        self.orderer.expect_final(index, clock.now)
        out: list[Action] = [Write({"next_utterance": self._queued_next})]
        if self._queue_depth() > self.settings.max_queue_depth:
            metrics.REFUSED.labels("overloaded").inc()
            return out + self._stand_in(index, FINAL, "overloaded",
                                        "the transcription queue is full; this speech was not transcribed", clock)
        c = self.config
        # A span that starts inside speech repeats the overlap: the gateway removes it from the
        # text, and then queues the translation itself.
        overlaps = commit.audio_start < commit.start
        if overlaps and c.target_language:
            self._gateway_translates.add(index)
        job = bus.AudioJob(
            kind="final", session_id=self.session_id, utterance_index=index,
            segment_id=bus.segment_id(self.session_id, index), start=round(commit.start, 3),
            end=round(commit.end, 3), audio_start=round(commit.audio_start, 3),
            source_language=c.source_language, source_languages=c.source_languages, language_hint=self.language.hint,
            target_language=None if overlaps else c.target_language,
            # Audio that repeats the overlap already gives the model the committed words; with
            # them in the prompt as well, beam search on base skips them and often stops early
            # ("so we are going" for "so we are going for a walk in the park").
            prompt=None if overlaps else span.prompt,
            word_timestamps=c.word_timestamps, commit=commit.reason if self.turns.enabled else None,
            created_at=clock.wall, speech_end_at=speech_end_at,
        )
        # The job first: the write of the counter must not delay it by a round trip.
        return [QueueAudio(job, span.audio), *out]

    def _commit_words(self, action: CommitWords, partial: bus.PartialResult | None, clock: Clock) -> list[Action]:
        """Agreed words of the partial hypotheses: a final now, from the gateway itself."""
        commit = action.commit
        text = commit.text
        target = self.config.target_language
        final = bus.FinalResult(
            session_id=self.session_id, segment_id=bus.segment_id(self.session_id, action.index),
            utterance_index=action.index, text=text,
            language=partial.language if partial else None,
            language_probability=partial.language_probability if partial else None,
            language_probability_scope=partial.language_probability_scope if partial else None,
            start=round(commit.start, 3), end=round(commit.end, 3),
            words=[bus.Word(word=w.text, start=w.start, end=w.end, probability=w.probability) for w in commit.words]
            if self.config.word_timestamps else None,
            worker=partial.worker if partial else "", speech_end_at=self._wall_at(commit.end, clock),
            translation_expected=bool(target and text), commit=commit.reason,
        )
        unit = self.units.setdefault(action.index, Unit(action.index, self._wall_at(commit.start, clock)))
        unit.queued_wall = clock.wall
        unit.speech_seconds = action.speech_seconds
        self.orderer.expect_final(action.index, clock.now)
        out: list[Action] = [Write({"next_utterance": self._queued_next})]
        if target and text:
            out.append(QueueTranslation(self._translation_job(final, target, clock)))
        return out + self.on_result(final, clock)

    def _translation_job(self, final: bus.FinalResult, target: str, clock: Clock) -> bus.TranscriptionJob:
        return bus.TranscriptionJob(
            session_id=final.session_id, segment_id=final.segment_id, utterance_index=final.utterance_index,
            text=final.text, source_language=final.language, target_language=target,
            created_at=clock.wall, speech_end_at=final.speech_end_at,
        )

    def write_failed(self, action: Action, clock: Clock) -> list[Action]:
        """Redis would not take one of this session's writes or jobs."""
        if isinstance(action, QueueAudio):
            if action.append_from is not None and self._appended is not None:
                # What was to be appended is not on the stream: the next partial appends it again.
                lo, hi = self._appended
                self._appended = (lo, min(hi, action.append_from)) if action.append_from > lo else None
            return self.queue_failed(action.job, clock)
        if isinstance(action, QueueTranslation) and action.job.utterance_index is not None:
            return self.translation_failed(action.job.utterance_index, clock)
        return []  # a log write or a note: the session goes on, a resume may miss it

    def queue_failed(self, job: bus.AudioJob, clock: Clock) -> list[Action]:
        """The shell could not put a job on the bus (Redis unreachable)."""
        if job.kind == "partial":
            self.scheduler.on_result(job.utterance_index, job.partial_seq)
            return []
        return self._stand_in(job.utterance_index, FINAL, "unavailable",
                              "the transcription queue is unreachable; utterance lost", clock)

    def translation_failed(self, index: int, clock: Clock) -> list[Action]:
        self.orderer.add_translation(index, None, clock.now)
        return self._release(clock)

    def _stand_in(self, index: int, kind: str, code: str, message: str, clock: Clock) -> list[Action]:
        """An error in the place of a result that will not come: sent in order, and logged."""
        error = protocol.Error(code=code, message=message, segment_id=bus.segment_id(self.session_id, index)).to_dict()
        if kind == FINAL:
            self.orderer.add_final(index, error, clock.now)
        else:
            self.orderer.add_translation(index, error, clock.now)
        return self._release(clock)

    def _maybe_partial(self, clock: Clock) -> list[Action]:
        if self.phase is not Phase.OPEN:
            return []
        decision = self.scheduler.poll(clock.now, self._queue_depth(), speech_end=self.segmenter.current_end)
        if not decision.send:
            if decision.reason == OVERLOADED:
                metrics.PARTIAL_JOBS.labels("skipped_overloaded").inc()
            return []
        assert decision.index is not None and decision.partial_seq is not None
        tail = self.turns.partial_audio(self.segmenter)
        if tail is None:
            self.scheduler.on_result(decision.index, decision.partial_seq)
            return []
        audio, audio_start = tail
        streaming = self.turns.enabled
        job = bus.AudioJob(
            kind="partial", session_id=self.session_id, utterance_index=decision.index,
            partial_seq=decision.partial_seq, segment_id=bus.segment_id(self.session_id, decision.index),
            start=round(audio_start, 3), end=round(self.segmenter.now, 3), audio_start=round(audio_start, 3),
            source_language=self.config.source_language, source_languages=self.config.source_languages,
            language_hint=self.language.hint, target_language=None,
            # The committed text as context, and word times for the commit policy.
            prompt=self.turns.prompt() if streaming else None, word_timestamps=streaming,
            created_at=clock.wall,
        )
        metrics.PARTIAL_JOBS.labels("queued").inc()
        metrics.PARTIAL_AUDIO_SECONDS.observe(len(audio) / 16000)
        return [self._partial_by_reference(job, audio)]

    def _partial_by_reference(self, job: bus.AudioJob, audio: np.ndarray) -> QueueAudio:
        """The partial names its audio by sample range; only what this core has not yet put on
        the session's audio stream goes there. Successive tails overlap almost entirely, so
        each sample travels once instead of once per partial (issue 14: the bus within a
        small constant of the audio rate)."""
        last = round(self.segmenter.now * SR)
        first = last - len(audio)
        lo_hi = self._appended
        if lo_hi is not None and lo_hi[0] <= first <= lo_hi[1]:
            append_from, lo = lo_hi[1], lo_hi[0]
        else:  # nothing appended yet, or a gap since (a new turn): start a new run at ``first``
            append_from, lo = first, first
        self._appended = (lo, last)
        job = job.model_copy(update={"audio_samples": (first, last)})
        return QueueAudio(job, audio, append_from=append_from)

    # -- inputs: results and notes from the session's result stream ----------------------

    def on_result(self, result: Result, clock: Clock) -> list[Action]:
        if self.phase in (Phase.CLOSED, Phase.TAKEN_OVER, Phase.DONE):
            return []
        if isinstance(result, bus.PartialResult):
            return self._on_partial(result, clock)
        if isinstance(result, bus.FinalResult) and result.queued_at:
            overhead = clock.wall - result.queued_at - result.inference_seconds
            metrics.PIPELINE_OVERHEAD.observe(max(0.0, overhead))
        index = result.utterance_index
        pre: list[Action] = []
        if isinstance(result, bus.FinalResult):
            if index is None or index < self._floor:
                return []  # an earlier holder sent it (or gave up on it); the orderer knows the rest
            if result.commit is not None and self.turns.expects(index):
                result, pre = self._committed_final(result, clock)
            if self.orderer.add_final(index, protocol.final_from_bus(result).to_dict(), clock.now,
                                      result.translation_expected):
                unit = self._observe_final(result, clock)
                if result.text.strip():
                    seconds = unit.speech_seconds if unit is not None else None
                    if seconds is None:  # a final queued by an earlier holder (resume): its whole span
                        seconds = result.end - result.start
                    self._observe_language(result.language, result.language_probability, seconds,
                                           result.language_probability_scope)
        elif isinstance(result, bus.TranslationResult):
            if index is not None:
                self.orderer.add_translation(index, protocol.translation_from_bus(result).to_dict(), clock.now)
        else:
            out: list[Action] = []
            if result.code not in self.errors_sent:  # one notice per session and code
                self.errors_sent.add(result.code)
                out = self.error(result.code, result.message, segment_id=result.segment_id)
            if index is not None:
                # The error stands in for the missing result: the orderer stops waiting for it.
                if result.code.startswith("transcription"):
                    self.orderer.add_final(index, None, clock.now)
                else:
                    self.orderer.add_translation(index, None, clock.now)
            return out + self._release(clock)
        return pre + self._release(clock)

    def _committed_final(self, result: bus.FinalResult, clock: Clock) -> tuple[bus.FinalResult, list[Action]]:
        """A final job's result for a committed span: without the overlap it repeated; its
        translation queued here when the gateway kept it back for that."""
        words = [HypWord(w.word, w.start, w.end, w.probability) for w in result.words] if result.words else None
        text, kept = self.turns.final_text(result.utterance_index, result.text, words)
        translate_here = result.utterance_index in self._gateway_translates
        self._gateway_translates.discard(result.utterance_index)
        update: dict[str, Any] = {"text": text}
        if kept is not None:
            update["words"] = [bus.Word(word=w.text, start=w.start, end=w.end, probability=w.probability) for w in kept]
        target = self.config.target_language
        if translate_here and text.strip() and target:
            update["translation_expected"] = True
            result = result.model_copy(update=update)
            return result, [QueueTranslation(self._translation_job(result, target, clock))]
        return result.model_copy(update=update), []

    def _on_partial(self, result: bus.PartialResult, clock: Clock) -> list[Action]:
        self.scheduler.on_result(result.utterance_index, result.partial_seq)
        if result.skipped:
            metrics.PARTIAL_JOBS.labels("skipped").inc()
            if result.skip_reason == bus.SKIP_AUDIO_MISSING:
                # The session's audio stream lost what this core appended (a Redis restart, an
                # expiry): the next partial appends its whole tail again.
                self._appended = None
            return []
        self._last_partial = result
        if result.text.strip() and result.audio_start is not None and result.audio_end is not None:
            # The tail's detection is evidence too, first of all an English-only model's "hint":
            # it makes the session confident before its first short piece would be held back.
            self._observe_language(result.language, result.language_probability,
                                   self.turns.speech_seconds(result.audio_end, result.audio_start),
                                   result.language_probability_scope)
        words = None if result.words is None else [HypWord(w.word, w.start, w.end, w.probability) for w in result.words]
        actions, text = self.turns.on_partial(result.utterance_index, words, result.audio_end, result.text,
                                              self._hold)
        out = self._run(actions, clock, result)
        # What is left uncommitted is the partial of the next unit.
        index = self.turns.next_index if actions else result.utterance_index
        unit = self.units.get(index)
        if not text or unit is None:
            metrics.PARTIAL_JOBS.labels("empty" if text is not None else "late").inc()
            return out
        if not self.orderer.add_partial(index, result.partial_seq):
            metrics.PARTIAL_JOBS.labels("late").inc()
            return out  # never a partial after its unit's final, nor an older one
        if not unit.partial_shown:
            unit.partial_shown = True
            metrics.FIRST_PARTIAL_LATENCY.observe(max(0.0, clock.wall - unit.onset_wall))
        metrics.PARTIALS_SENT.inc()
        shown = result.model_copy(update={"text": text, "segment_id": bus.segment_id(self.session_id, index)})
        return out + self._send(protocol.realtime_from_bus(shown).to_dict())

    def on_note(self, text: str, clock: Clock) -> list[Action]:
        """A control note from the session's result stream, in order with its results."""
        kind, _, detail = text.partition(" ")
        if kind == TAKEOVER:
            if detail == self.holder:
                self._takeovers_count = True
            elif self._takeovers_count:
                return self.taken_over()
        return []

    def taken_over(self) -> list[Action]:
        """Another connection resumed this session: it delivers and writes from now on."""
        if self.phase in (Phase.TAKEN_OVER, Phase.CLOSED):
            return []
        self.phase = Phase.TAKEN_OVER
        return [Close(1001, "session resumed on another connection")]

    def _observe_final(self, result: bus.FinalResult, clock: Clock) -> Unit | None:
        """Latency metrics of a final; its unit record is done with (returned for its evidence)."""
        unit = self.units.pop(result.utterance_index, None)
        if result.speech_end_at:
            metrics.FINAL_LATENCY.observe(max(0.0, clock.wall - result.speech_end_at))
        if unit is not None and unit.queued_wall:
            metrics.FINAL_LATENCY_AFTER_THRESHOLD.observe(max(0.0, clock.wall - unit.queued_wall))
        return unit

    # -- time -------------------------------------------------------------------------------

    def deadline(self, clock: Clock) -> float:
        """The next ``now`` at which :meth:`tick` has something to do (for the shell's timer)."""
        s = self.settings
        times = [clock.now + 3600.0]  # nothing due: look again in an hour
        if self.lease is not None:
            exp = self.lease.expires_at
            times.append(clock.now + (exp if clock.wall < exp else exp + self.lease.grace_seconds) - clock.wall)
        if self.phase is Phase.OPEN:
            times += [self.started + s.max_session_seconds, self.last_message + s.idle_timeout_seconds]
            due = self.scheduler.next_due()
            if due is not None:
                times.append(due)
        skip = self.orderer.next_deadline()
        if skip is not None:
            times.append(skip)
        return min(times)

    def tick(self, clock: Clock) -> list[Action]:
        """Time-driven work: ordering timeouts, partial pacing, token expiry, idle and session
        limits, and ``done`` once an ending session has nothing left to wait for."""
        if self.phase in (Phase.CLOSED, Phase.TAKEN_OVER, Phase.DONE):
            return []
        s = self.settings
        out: list[Action] = []
        if self.lease is not None:
            state = self.lease.poll(clock.wall)
            if state == "expired":
                out += self.error("token_expired", "the token expired: send {type: auth, token} to go on")
            elif state == "close":
                self.phase = Phase.CLOSED
                return [*out, *self._detach(), Close(1008, "token_expired")]
        if self.phase is Phase.OPEN:
            if clock.now - self.started >= s.max_session_seconds:
                out += self.error("session_too_long", "MAX_SESSION_SECONDS reached")
                out += self.end(clock)
            elif clock.now - self.last_message >= s.idle_timeout_seconds:
                out += self.error("idle_timeout", f"no message for {s.idle_timeout_seconds:.0f}s")
                out += self.end(clock)
            else:
                out += self._maybe_partial(clock)  # partials stay on time when audio frames are sparse
        return out + self._release(clock)

    # -- output -------------------------------------------------------------------------------

    def _release(self, clock: Clock) -> list[Action]:
        out: list[Action] = []
        for message in self.orderer.release(clock.now, draining=self.phase is Phase.ENDING):
            if message is None:
                continue
            if message["type"] == "final":
                self.last_final = message["text"] or self.last_final
            metrics.RESULTS_SENT.labels(message["type"]).inc()
            out += self._send(message)
            fields = self._counters()
            if message["type"] == "final":
                fields["last_final"] = self.last_final
            out.append(Write(fields, message))
        if self.phase is Phase.ENDING and self.orderer.idle:
            self.phase = Phase.DONE
            out += [*self._send(protocol.Done().to_dict()), Write(self._counters()), Close(1000, "done")]
        return out

    def _counters(self) -> dict[str, Any]:
        unsent = self.orderer.first_unsent_final()
        return {"next_seq": self.seq + 1, "delivered_below": self._queued_next if unsent is None else unsent}

    def _send(self, message: dict[str, Any]) -> list[Action]:
        self.seq += 1
        message["seq"] = self.seq
        return [Send(message)]

    def error(self, code: str, message: str, *, segment_id: str | None = None) -> list[Action]:
        return self._send(protocol.Error(code=code, message=message, segment_id=segment_id).to_dict())

    def _ready(self) -> Send:
        c = self.config
        return Send(protocol.Ready(
            session_id=self.session_id, sample_rate=c.sample_rate, source_language=c.source_language or "auto",
            target_language=c.target_language, partials=c.partials,
            silence_threshold_seconds=self.settings.silence_threshold_seconds, last_seq=self.seq,
            resume_secret=self.resume_secret,
        ).to_dict())


def _index(message: dict[str, Any]) -> int | None:
    """The unit index of a logged result message (from its ``segment_id``)."""
    if message.get("type") not in ("final", "translation", "error"):
        return None
    try:
        return int(str(message.get("segment_id", "")).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None
