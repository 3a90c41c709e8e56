"""Session-level language evidence in the streaming commits, through SessionCore (issue 20).

Pure and clock-driven: synthetic voiced audio (both VADs take it for speech) is fed to the
real segmenter in 100 ms chunks with the clock advanced by hand; worker results are built
from the jobs the core queued. No sockets, no Redis, no model.

The scene is the Italian clip whose first short utterance came out as Thai: a short first
piece ("Sì.", under a second of speech), a pause longer than the commit pause and shorter than
the silence threshold, then the rest of the sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common import bus
from common.settings import GatewaySettings
from gateway import protocol
from gateway.language_evidence import SessionLanguage
from gateway.session_actions import Action, Clock, QueueAudio
from gateway.session_core import SessionCore
from gateway.sessions import SessionConfig
from tests.synthetic_speech import SR, compose, vowel

SETTINGS = GatewaySettings(use_silero=False, idle_timeout_seconds=1e6, max_session_seconds=1e7)
CHUNK = SR // 10
SI = vowel(0.6)  # "Sì."
REST = vowel(2.5, seed=1)  # "... allora andiamo a prendere un caffè."


@dataclass
class Run:
    """One session fed in real time; what it queued, when (audio seconds sent)."""

    core: SessionCore
    t: float = 0.0
    finals: list[tuple[float, bus.AudioJob]] = field(default_factory=list)
    partials: list[bus.AudioJob] = field(default_factory=list)

    @classmethod
    def session(cls, source_language: str | None = None) -> Run:
        config = SessionConfig(source_language=source_language)
        return cls(SessionCore(SETTINGS, "s1", Clock(100.0, 1.7e9), config=config))

    @property
    def clock(self) -> Clock:
        return Clock(100.0 + self.t, 1.7e9 + self.t)

    def take(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, QueueAudio):
                if a.job.kind == "final":
                    self.finals.append((self.t, a.job))
                else:
                    self.partials.append(a.job)

    def feed(self, pcm: np.ndarray, until: float | None = None) -> None:
        """Stream ``pcm``, or only its audio up to session time ``until``."""
        for i in range(0, len(pcm), CHUNK):
            if until is not None and self.t >= until - 1e-9:
                return
            self.t = round(self.t + CHUNK / SR, 3)
            self.take(self.core.feed(pcm[i : i + CHUNK], self.clock))

    def answer_partial(self, language: str, probability: float, scope: str) -> None:
        """The worker's answer to the latest partial job (a hypothesis without words)."""
        job = self.partials[-1]
        self.take(self.core.on_result(bus.PartialResult(
            session_id="s1", segment_id=job.segment_id, utterance_index=job.utterance_index,
            partial_seq=job.partial_seq, text=" Sì.", language=language, language_probability=probability,
            language_probability_scope=scope, audio_start=job.audio_start, audio_end=job.end,
        ), self.clock))

    def answer_final(self, job: bus.AudioJob, text: str, language: str, probability: float, scope: str) -> None:
        self.take(self.core.on_result(bus.FinalResult(
            session_id="s1", segment_id=job.segment_id, utterance_index=job.utterance_index, text=text,
            language=language, language_probability=probability, language_probability_scope=scope,
            start=job.start, end=job.end, commit=job.commit,
        ), self.clock))


def scene() -> np.ndarray:
    """1 s of quiet, "Sì." (0.6 s), a 0.8 s pause, the rest (2.5 s), then the turn ends."""
    return compose([(1.0, SI), (0.8, REST), (2.6, None)])


REST_ONSET = 1.0 + 0.6 + 0.8  # where the rest of the sentence begins, session seconds


def test_a_short_first_piece_waits_for_the_rest_of_its_turn_in_an_auto_session() -> None:
    run = Run.session()
    run.feed(scene(), until=REST_ONSET)
    assert run.finals == []  # the 0.5 s pause after "Sì." commits nothing yet
    run.feed(scene()[round(REST_ONSET * SR):])
    first_at, first = run.finals[0]
    # The next job of the turn carries "Sì." with the rest: detection runs on all of it.
    assert first.start < 1.0 and first.end > REST_ONSET + 2.0
    assert first.commit == "pause" and first.language_hint is None and first.source_language is None
    assert first_at < 7.0  # at the pause after the rest, not held to the end of the session


def test_a_pinned_language_commits_the_short_piece_at_its_pause() -> None:
    run = Run.session("it")
    run.feed(scene(), until=REST_ONSET)
    ((at, job),) = run.finals
    assert job.commit == "pause" and job.end < REST_ONSET and at < REST_ONSET
    assert job.source_language == "it"


def test_a_confident_session_commits_a_short_piece_at_once_and_hints_its_language() -> None:
    run = Run.session()
    run.feed(compose([(1.0, REST), (2.6, None)]))  # a first, long turn
    (_, job), = run.finals
    run.answer_final(job, "Allora andiamo a prendere un caffè.", "it", 0.95, "set")
    assert run.core.language.confident and run.core.language.hint == "it"
    start = run.t
    run.feed(scene(), until=start + REST_ONSET)
    assert len(run.finals) == 2, "the short piece of the second turn went at its pause"
    short = run.finals[1][1]
    assert short.end < start + REST_ONSET and short.language_hint == "it"
    # A doubtful detection of that short piece does not flip the session's language.
    run.answer_final(short, "Sì.", "th", 0.31, "set")
    assert run.core.language.hint == "it"


def test_an_english_only_models_answer_counts_at_once() -> None:
    """tiny.en does not detect: every result says en, 1.0, scope hint. Its first partial makes
    the session confident, so the first short piece is not held back (final latency)."""
    run = Run.session()
    run.feed(scene(), until=1.0 + 0.6)
    assert run.partials, "a partial job went during the speech"
    run.answer_partial("en", 1.0, "hint")
    assert run.core.language.pinned and run.core.language.hint == "en"
    run.feed(scene()[round(run.t * SR):], until=REST_ONSET)
    ((_, job),) = run.finals
    assert job.end < REST_ONSET


def test_a_doubtful_partial_does_not_lift_the_hold() -> None:
    run = Run.session()
    run.feed(scene(), until=1.0 + 0.6)
    run.answer_partial("th", 0.45, "set")
    assert not run.core.language.confident
    run.feed(scene()[round(run.t * SR):], until=REST_ONSET)
    assert run.finals == []


def test_at_the_end_of_a_turn_nothing_is_held() -> None:
    run = Run.session()
    run.feed(compose([(1.0, SI), (2.6, None)]))
    ((_, job),) = run.finals
    assert job.commit == "turn_end" and job.end < 2.5


def test_held_speech_is_still_cut_at_the_longest_uncommitted_length() -> None:
    """No unbounded tail: a session that never gets confident is cut at MAX_UNCOMMITTED_SECONDS."""
    run = Run.session()
    run.feed(compose([(1.0, SI), (0.8, vowel(12.0, seed=2)), (2.6, None)]), until=12.0)
    assert run.finals, "nothing committed in 11 s of speech"
    at, job = run.finals[0]
    assert job.commit in ("max_length", "pause") and at <= 1.0 + SETTINGS.max_uncommitted_seconds + 0.5
    assert job.end - job.start <= SETTINGS.max_uncommitted_seconds + 0.5


def test_a_language_change_starts_the_evidence_over() -> None:
    run = Run.session()
    run.core.language = SessionLanguage("it", 0.95, 3.0)
    run.take(run.core.on_config(protocol.ConfigMessage(type="config", source_language="es")))
    assert run.core.language == SessionLanguage("es", 1.0, 0.0, pinned=True)
    run.take(run.core.on_config(protocol.ConfigMessage(type="config", source_language="auto")))
    assert run.core.language == SessionLanguage()
