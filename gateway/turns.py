"""Streaming commits for one session: turns, their commit points and the units they make.

A pure core between the segmenter and the session (no asyncio, no Redis, no clock): the
session shell tells it what the segmenter saw and what results came back; it answers with
actions, which the shell turns into jobs and messages.

* :class:`TranscribeSpan`: queue a final job for this span of audio (a pause commit, a cut of
  over-long uncommitted speech, or the rest of a turn that ended);
* :class:`CommitWords`: these words of a partial hypothesis are agreed (LocalAgreement-2): they
  are a final now, without another inference;
* :class:`TurnEnded`: the turn is over; ``last_index`` is the unit of its last final.

The session may pass ``hold`` to :meth:`TurnCommitter.poll` and :meth:`TurnCommitter.on_partial`:
a pause or agreement commit of a piece it holds back (too little speech to detect the
session's language on, issue 20) does not happen yet; see :mod:`gateway.commits`.

Every committed piece is a *unit* with its own index (``segment_id = session:index``), so the
result orderer, the session log and resume work per unit as they did per utterance. The open
partial always belongs to :attr:`TurnCommitter.next_index`, the unit the uncommitted tail will
become. With ``enabled=False`` a turn is one unit, transcribed when it ends (the behaviour
before issue 14), through the same code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.commits import (
    Commit,
    CommitOptions,
    CommitPolicy,
    Hold,
    HypWord,
    trim_overlap,
    trim_text_overlap,
    words_from_text,
)
from gateway.segmenter import Segmenter, UtteranceReady

PROMPT_CHARS = 200  # committed text sent as the prompt (Whisper keeps ~220 tokens of it at most)
SR = 16000


@dataclass(frozen=True)
class TranscribeSpan:
    index: int
    commit: Commit
    audio: np.ndarray  # 16 kHz int16, from commit.audio_start to commit.end
    prompt: str | None
    turn_end: bool  # the last span of its turn
    speech_seconds: float = 0.0  # speech in the span (its pre-roll left out)


@dataclass(frozen=True)
class CommitWords:
    index: int
    commit: Commit
    speech_seconds: float = 0.0


@dataclass(frozen=True)
class TurnEnded:
    last_index: int | None
    start: float
    end: float


Action = TranscribeSpan | CommitWords | TurnEnded


@dataclass
class _SpanInfo:
    policy: CommitPolicy
    commit: Commit
    before: tuple[HypWord, ...]  # committed words just before the span, to remove its overlap


class TurnCommitter:
    """Commit points of a session's turns. One per session, used from one task."""

    def __init__(self, options: CommitOptions, first_index: int = 0, *, enabled: bool = True,
                 context: str = "") -> None:
        self.options = options
        self.enabled = enabled
        self.next_index = first_index
        self._policy: CommitPolicy | None = None
        self._turn_speech_start = 0.0
        self._turn_units: list[int] = []
        self._spans: dict[int, _SpanInfo] = {}
        self._context = context[-PROMPT_CHARS:]

    # ------------------------------------------------------------- turn life

    @property
    def in_turn(self) -> bool:
        return self._policy is not None

    def open_turn(self, audio_start: float, speech_start: float) -> None:
        """Speech was confirmed: a turn begins (its audio from ``audio_start``, pre-roll included)."""
        self._policy = CommitPolicy(self.options, turn_start=audio_start, speech_start=speech_start)
        self._turn_speech_start = speech_start
        self._turn_units = []

    def poll(self, seg: Segmenter, hold: Hold | None = None) -> list[Action]:
        """After audio was analysed: a pause long enough (unless ``hold`` keeps the piece back),
        or uncommitted audio too long, commits."""
        policy = self._policy
        if not self.enabled or policy is None or not seg.in_speech:
            return []
        policy.on_resume(seg.resumed_at)
        commit = policy.on_pause(seg.current_end, seg.now, hold)
        if commit is None:
            window = policy.cut_window(seg.now)
            if window is not None:
                commit = policy.cut(seg.quietest_point(*window))
        if commit is None:
            return []
        if not commit.needs_transcription:
            return [self._commit_words(commit)]
        return [self._span(commit, seg.audio_between(commit.audio_start, commit.end), turn_end=False)]

    def on_turn_ready(self, utt: UtteranceReady, *, continues: bool) -> list[Action]:
        """The segmenter ended the turn (``continues=False``) or cut it at its maximum length
        (``continues=True``: the speech goes on as a new turn from ``utt.end``)."""
        policy = self._policy or CommitPolicy(self.options, turn_start=utt.audio_start, speech_start=utt.start)
        actions: list[Action] = []
        commit = policy.end_turn(utt.end, utt.audio_start + len(utt.audio) / SR)
        if commit is not None:
            a = round((commit.audio_start - utt.audio_start) * SR)
            actions.append(self._span(commit, utt.audio[max(0, a):], turn_end=not continues, policy=policy))
        if continues:
            self._policy = CommitPolicy(self.options, turn_start=utt.end)
            return actions
        last = self._turn_units[-1] if self._turn_units else None
        actions.append(TurnEnded(last, self._turn_speech_start, utt.end))
        self._policy = None
        self._turn_units = []
        return actions

    # ------------------------------------------------------------- partials

    def partial_audio(self, seg: Segmenter) -> tuple[np.ndarray, float] | None:
        """Audio for the next partial job and where it starts: only the uncommitted tail (plus
        the overlap). None when there is nothing uncommitted to transcribe."""
        policy = self._policy
        if policy is None or not seg.in_speech:
            return None
        if not policy.has_uncommitted_speech(seg.current_end):
            return None
        start = policy.tail_start() if self.enabled else policy.turn_start
        return seg.audio_between(start, seg.now), start

    def on_partial(self, index: int, words: Sequence[HypWord] | None, audio_end: float | None,
                   text: str, hold: Hold | None = None) -> tuple[list[Action], str | None]:
        """A partial result for unit ``index``. Returns the commits it makes (an agreement,
        unless ``hold`` keeps it back) and the text to show as the partial (the uncommitted
        tail); None: stale, show nothing."""
        policy = self._policy
        if index != self.next_index or policy is None:
            return [], None
        if not self.enabled or words is None or audio_end is None:
            return [], text
        commit = policy.on_hypothesis(words, audio_end, hold)
        actions: list[Action] = []
        if commit is not None:
            actions.append(self._commit_words(commit))
        rest = trim_overlap(words, policy.commit_at, policy.committed)
        return actions, "".join(w.text for w in rest).strip()

    # ------------------------------------------------------------- finals

    def final_text(self, index: int, text: str, words: Sequence[HypWord] | None = None
                   ) -> tuple[str, list[HypWord] | None]:
        """A final job's result for unit ``index``: remove what its overlap repeated, remember
        the text as context. Returns the text and words to deliver."""
        info = self._spans.pop(index, None)
        if info is None:
            self._remember(text)
            return text, list(words) if words is not None else None
        if info.commit.audio_start < info.commit.start:
            text = trim_text_overlap(text, info.before)
            if words is not None:
                words = trim_overlap(words, info.commit.start, info.before)
        info.policy.on_committed_text(words_from_text(text, info.commit.start, info.commit.end))
        self._remember(text)
        return text, list(words) if words is not None else None

    def expects(self, index: int) -> bool:
        """Whether a final job's result for unit ``index`` is still awaited (not a redelivery)."""
        return index in self._spans

    def speech_seconds(self, end: float, start: float) -> float:
        """Seconds of speech in audio ``[start, end]`` of the open turn (its pre-roll left out)."""
        if self._policy is None:
            return max(0.0, end - start)
        return self._policy.speech_seconds(end, start)

    def prompt(self) -> str | None:
        """The committed text before the audio being transcribed now (the session's recent finals)."""
        return self._context.strip() or None

    # ------------------------------------------------------------- internals

    def _take_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        self._turn_units.append(index)
        return index

    def _span(self, commit: Commit, audio: np.ndarray, *, turn_end: bool,
              policy: CommitPolicy | None = None) -> TranscribeSpan:
        policy = policy or self._policy
        assert policy is not None
        prompt = self.prompt()
        index = self._take_index()
        self._spans[index] = _SpanInfo(policy, commit, tuple(policy.committed[-20:]))
        seconds = policy.speech_seconds(commit.end, commit.start)
        return TranscribeSpan(index, commit, audio, prompt, turn_end, seconds)

    def _commit_words(self, commit: Commit) -> CommitWords:
        self._remember(commit.text)
        assert self._policy is not None
        return CommitWords(self._take_index(), commit, self._policy.speech_seconds(commit.end, commit.start))

    def _remember(self, text: str) -> None:
        if text.strip():
            self._context = (self._context + " " + text.strip())[-PROMPT_CHARS:]
