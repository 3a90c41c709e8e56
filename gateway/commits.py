"""When to commit text inside a turn: a pure, clock-free core (issue 14).

A *turn* is the VAD utterance: it ends after ``SILENCE_THRESHOLD_SECONDS`` of silence. Inside
it the gateway commits pieces of text as soon as they are stable; each committed piece becomes
a ``final`` of its own (own ``segment_id``, ``start``, ``end``), never retracted, and only the
uncommitted rest is shown as the partial. :class:`CommitPolicy` decides, for one turn, where
the commit points go. Every time is seconds of session audio; the policy never reads a clock.

Three ways to commit (reason in :attr:`Commit.reason`):

* ``pause``: the speaker paused for ``pause_seconds`` (``COMMIT_PAUSE_SECONDS``). The span from
  the last commit point to the pause is committed; its text comes from a final job on that
  audio (beam search, like the final of a turn), which needs no agreement and ends on silence.
* ``agreement``: LocalAgreement-2. Two successive partial hypotheses (of the audio since the
  last commit) agree on a word prefix; the agreed prefix is stable. It is committed up to its
  last sentence end (a word ending in ``.``, ``?`` or ``!`` followed by at least one more word,
  since Whisper ends every clip with a period), or whole once it has ``max_words`` words, spans
  ``max_uncommitted_seconds``, or is *settled* (the later hypothesis heard ``settled_seconds``
  more audio and added no word: the speaker stopped, if only for a conversational gap).
  While Whisper punctuates the speech, a sentence end is waited for up to
  ``punctuated_max_words``, and past ``max_words`` the prefix is cut at its last clause mark.
  Its text is the agreed words themselves: no extra inference.
* ``max_length``: no agreement and no pause for ``max_uncommitted_seconds``: the caller cuts at
  the quietest point of a window the policy names (:meth:`CommitPolicy.cut_window`) and the span
  is transcribed as a final job, as for a pause.

At the end of the turn (:meth:`CommitPolicy.end_turn`) whatever speech is still uncommitted is
committed (reason ``turn_end``) through a final job.

Holding a piece back (issue 20): a pause or agreement commit may be refused by the caller's
``hold`` (given the piece's seconds of speech, see :meth:`CommitPolicy.speech_seconds`), while
the session's language is not known yet and the piece is too short to detect it on
(:func:`gateway.language_evidence.hold_for_more_audio`). Nothing moves then: the piece stays
uncommitted and the next commit of the turn takes it with more audio. Cuts (``max_length``)
and the end of the turn are never held, so the uncommitted audio stays bounded.

Partial jobs carry only the audio from :meth:`CommitPolicy.tail_start` (the commit point minus
``overlap_seconds``), so their cost does not grow with the turn. Words a hypothesis repeats from
the overlap are removed (:func:`trim_overlap`), by time and by matching the committed text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

_NORM = re.compile(r"[^\w']+", re.UNICODE)
SENTENCE_END = (".", "?", "!")
CLAUSE_END = (",", ";", ":")
#: Committed words looked at to tell whether the speech comes punctuated.
PUNCTUATION_LOOKBACK = 20
CommitReason = Literal["pause", "agreement", "max_length", "turn_end"]
#: Given a would-be piece's seconds of speech: True keeps it uncommitted for now.
Hold = Callable[[float], bool]


@dataclass(frozen=True)
class HypWord:
    """A word of a hypothesis, with times in session seconds. ``text`` keeps Whisper's
    leading space and punctuation, so joining the words gives the text back."""

    text: str
    start: float
    end: float
    probability: float = 1.0

    @property
    def key(self) -> str:
        """The word compared case- and punctuation-insensitively."""
        return _NORM.sub("", self.text.lower())


@dataclass(frozen=True)
class CommitOptions:
    pause_seconds: float = 0.5  # COMMIT_PAUSE_SECONDS
    max_uncommitted_seconds: float = 8.0  # MAX_UNCOMMITTED_SECONDS
    overlap_seconds: float = 0.5  # audio before the commit point that partials re-send
    #: Audio kept after the last voiced window when a pause commit cuts (the word's release).
    pause_tail_seconds: float = 0.25
    #: An agreed prefix this long is committed even without a sentence end. Small on purpose:
    #: in speech without pauses agreement is the only way to commit, and Whisper given an
    #: unpunctuated prompt often stops punctuating (20 words gave finals 6 s apart). Not too
    #: small either: a piece cut after 4 words leaves the next one a phrase's second half
    #: ("So we are going" + "for walking the park."); 6 made every clip's WER lower
    #: (tiny.en: the clean clip 8.3 % -> 0 %, the dialogues by 0.03-0.05), at +0.3 s p50 on
    #: the pause-less monologue (``python -m benchmarks.streaming``).
    max_words: int = 6
    #: The same limit while the speech comes punctuated (a mark inside the hypothesis, or in
    #: the turn's recent committed text): a sentence end is then likely to come, and a whole
    #: sentence is transcribed, and translated, better than its halves. Until then the
    #: agreed prefix is cut at its last clause mark (",", ";", ":") after ``max_words``.
    #: (``python -m benchmarks.streaming``, tiny.en: see the README's streaming section.)
    punctuated_max_words: int = 14
    #: A pause commit takes its text from the latest hypothesis when that one heard the whole
    #: pause start (no extra inference, no wait); otherwise, or when False, from a final job.
    pause_from_hypothesis: bool = True
    #: Audio kept before speech that resumes after a pause commit (the rest of the pause is skipped).
    resume_lead_seconds: float = 0.3
    #: Voiced audio ending less than this after the commit point is not worth a commit of its
    #: own (Whisper's word ends come a little before the VAD's end of speech).
    min_speech_seconds: float = 0.25
    #: A hypothesis that heard this much more audio than the previous one and says exactly
    #: the same words is settled: the speaker stopped (a turn's gap in conversation is often
    #: shorter than a pause commit, and noisy), so all of it is committed, its last sentence
    #: end included. Without this, a short last sentence waits for the next speaker's words.
    settled_seconds: float = 0.3

    def __post_init__(self) -> None:
        if self.pause_seconds <= 0 or self.max_uncommitted_seconds <= 0:
            raise ValueError("pause_seconds and max_uncommitted_seconds must be > 0")
        if self.overlap_seconds < 0 or self.pause_tail_seconds < 0:
            raise ValueError("overlap_seconds and pause_tail_seconds must be >= 0")
        if self.max_words < 1 or self.punctuated_max_words < 1:
            raise ValueError("max_words and punctuated_max_words must be >= 1")


@dataclass(frozen=True)
class Commit:
    """One committed span ``[start, end)`` of the turn (session seconds).

    ``words`` empty: the text is not known yet; transcribe the audio from ``audio_start``
    (``start`` minus an overlap when the span begins mid-speech) to ``end`` as a final job.
    """

    reason: CommitReason
    start: float
    end: float
    audio_start: float
    words: tuple[HypWord, ...] = ()

    @property
    def needs_transcription(self) -> bool:
        return not self.words

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


@dataclass
class CommitPolicy:
    """The commit points of one turn. Feed it hypotheses and pauses; it answers with commits."""

    options: CommitOptions
    #: Where the turn's audio begins (pre-roll included): the first commit span starts here.
    turn_start: float
    #: Where the turn's speech begins (its confirmed onset; None: at ``turn_start``). The
    #: pre-roll before it is not speech a language could be detected on.
    speech_start: float | None = None
    commit_at: float = field(init=False)
    #: Committed words of this turn (for the prompt and for overlap removal).
    committed: list[HypWord] = field(default_factory=list)
    commits: int = 0
    _previous: list[HypWord] = field(default_factory=list)
    _previous_end: float = 0.0  # audio end of the hypothesis in ``_previous``
    _mid_speech: bool = False  # the last commit point lies inside speech (an agreement)
    _after_pause: bool = False  # committed at a pause; speech has not resumed since

    def __post_init__(self) -> None:
        self.commit_at = self.turn_start

    # ------------------------------------------------------------- what to send

    def tail_start(self) -> float:
        """Start of the audio a partial job carries: the commit point, minus the overlap when
        that point lies inside speech (a pause commit ends on silence: nothing to overlap)."""
        if not self._mid_speech:
            return self.commit_at
        return max(self.turn_start, self.commit_at - self.options.overlap_seconds)

    def speech_seconds(self, end: float, start: float | None = None) -> float:
        """Seconds of speech in a piece from ``start`` (default: the commit point) to ``end``,
        the turn's pre-roll left out."""
        onset = self.turn_start if self.speech_start is None else self.speech_start
        return max(0.0, end - max(self.commit_at if start is None else start, onset))

    def has_uncommitted_speech(self, speech_end: float | None) -> bool:
        """Whether voiced audio ends after the commit point (else a partial would only
        repeat what is committed)."""
        return speech_end is not None and speech_end > self.commit_at + self.options.min_speech_seconds

    # ------------------------------------------------------------- inputs

    def on_hypothesis(self, words: Sequence[HypWord], audio_end: float, hold: Hold | None = None) -> Commit | None:
        """A partial hypothesis of the audio from :meth:`tail_start` to ``audio_end``.

        Returns an ``agreement`` commit when it and the previous hypothesis agree on enough,
        unless ``hold`` keeps the piece back (then the agreed words stay uncommitted).
        """
        current = trim_overlap(words, self.commit_at, self.committed)
        previous, self._previous = self._previous, current
        heard_more = audio_end - self._previous_end
        self._previous_end = audio_end
        agreed = 0
        for a, b in zip(previous, current, strict=False):
            if a.key != b.key or not a.key:
                break
            agreed += 1
        if agreed == 0:
            return None
        cut = 0
        for i in range(agreed):
            # A sentence end counts only when the hypothesis goes on after it.
            if current[i].text.rstrip().endswith(SENTENCE_END) and i + 1 < len(current):
                cut = i + 1
        span = current[agreed - 1].end - self.commit_at
        settled = agreed == len(current) == len(previous) and heard_more >= self.options.settled_seconds
        punctuated = self._punctuated(current)
        limit = max(self.options.max_words, self.options.punctuated_max_words if punctuated else 0)
        whole = agreed >= limit or span >= self.options.max_uncommitted_seconds
        if cut == 0 and punctuated and agreed >= self.options.max_words and not whole:
            cut = _last_clause_end(current, agreed)
        if settled or (cut == 0 and whole):
            cut = agreed
        if cut and hold is not None and hold(self.speech_seconds(current[cut - 1].end)):
            # Too short a piece to know its language: the whole agreed prefix if that is long
            # enough to be committed and to detect on; else wait for the next hypothesis.
            cut = agreed if whole and not hold(self.speech_seconds(current[agreed - 1].end)) else 0
        if cut == 0:
            return None
        taken = tuple(current[:cut])
        commit = Commit("agreement", self.commit_at, taken[-1].end, self.commit_at, taken)
        self._advance(commit, mid_speech=True)
        self._previous = current[cut:]
        return commit

    def on_pause(self, speech_end: float | None, now: float, hold: Hold | None = None) -> Commit | None:
        """The segmenter's view: voiced audio ended at ``speech_end``; ``now`` is the audio
        analysed so far. A pause of ``pause_seconds`` after uncommitted speech commits it,
        unless ``hold`` keeps the piece back (it is asked again at every call)."""
        if speech_end is None or now - speech_end < self.options.pause_seconds:
            return None
        if not self.has_uncommitted_speech(speech_end):
            return None
        end = min(now, speech_end + self.options.pause_tail_seconds)
        heard = self._previous
        from_hypothesis = self.options.pause_from_hypothesis and heard and self._previous_end >= speech_end + 0.1
        if from_hypothesis:
            end = max(end, heard[-1].end)
        if hold is not None and hold(self.speech_seconds(end)):
            return None
        if from_hypothesis:
            # The latest hypothesis heard the speech up to the pause: its words are the text.
            commit = Commit("pause", self.commit_at, end, self.commit_at, tuple(heard))
            self._advance(commit, mid_speech=False)
            self._previous = []
        else:
            commit = self._span("pause", end)
        self._after_pause = True
        return commit

    def on_resume(self, resumed_at: float | None) -> None:
        """Speech resumed at ``resumed_at`` after a pause commit: the silence between is nobody's,
        so the next span (and the partials' audio) starts shortly before the new speech."""
        if not self._after_pause or resumed_at is None or resumed_at <= self.commit_at:
            return
        self._after_pause = False
        self.commit_at = max(self.commit_at, resumed_at - self.options.resume_lead_seconds)

    def cut_window(self, now: float) -> tuple[float, float] | None:
        """When the uncommitted audio reached ``max_uncommitted_seconds`` without a commit: the
        window in which the caller should find the quietest point and call :meth:`cut`."""
        if now - self.commit_at < self.options.max_uncommitted_seconds:
            return None
        return (self.commit_at + self.options.max_uncommitted_seconds / 2, now)

    def cut(self, at: float) -> Commit | None:
        """Commit the span up to ``at`` (the quietest point of :meth:`cut_window`)."""
        if at <= self.commit_at:
            return None
        commit = self._span("max_length", at)
        self._mid_speech = True  # a cut in continuous speech: the next span overlaps
        return commit

    def end_turn(self, speech_end: float, audio_end: float) -> Commit | None:
        """The turn ended (silence threshold, flush, end of session): the rest, if it holds speech."""
        if not self.has_uncommitted_speech(speech_end):
            return None
        return self._span("turn_end", max(audio_end, speech_end))

    def on_committed_text(self, words: Sequence[HypWord]) -> None:
        """The text of a transcribed span arrived (a final job's result): remember it for the
        prompt and for removing the overlap from the next hypotheses."""
        self.committed.extend(words)
        del self.committed[: max(0, len(self.committed) - 64)]

    # ------------------------------------------------------------- internals

    def _punctuated(self, current: Sequence[HypWord]) -> bool:
        """Whether Whisper punctuates this speech: a mark on a word of the hypothesis other
        than its last (every clip ends with a period), or in the turn's recent committed text.
        Given an unpunctuated prompt Whisper often stops punctuating; then no sentence end
        will come and pieces are cut at ``max_words``."""
        words = [*self.committed[-PUNCTUATION_LOOKBACK:], *current[:-1]]
        return any(w.text.rstrip().endswith(SENTENCE_END + CLAUSE_END) for w in words)

    def _span(self, reason: CommitReason, end: float) -> Commit:
        start = self.commit_at
        audio_start = max(self.turn_start, start - self.options.overlap_seconds) if self._mid_speech else start
        commit = Commit(reason, start, end, audio_start)
        self._advance(commit, mid_speech=False)
        self._previous = []
        return commit

    def _advance(self, commit: Commit, *, mid_speech: bool) -> None:
        self.commit_at = commit.end
        self._mid_speech = mid_speech
        self.commits += 1
        if commit.words:
            self.on_committed_text(commit.words)


def _last_clause_end(words: Sequence[HypWord], agreed: int) -> int:
    """Words up to the last clause mark inside the agreed prefix (at least 3, and with a word
    after it), or 0."""
    for i in range(agreed - 1, 1, -1):
        if words[i].text.rstrip().endswith(CLAUSE_END) and i + 1 < len(words):
            return i + 1
    return 0


def trim_overlap(words: Sequence[HypWord], commit_at: float, committed: Sequence[HypWord],
                 max_ngram: int = 20, slack: float = 0.1) -> list[HypWord]:
    """Remove the words of a hypothesis that belong before ``commit_at``.

    By time: a word that ends before the commit point (``slack`` seconds of tolerance) was
    committed already, or is a fragment cut by the start of the overlap. By text: when the
    first remaining words repeat the last committed ones (1..``max_ngram`` words, compared
    without case and punctuation), they are the overlap transcribed again and go too. Time
    alone is not enough: Whisper stretches a word's end towards the next word, so the word
    after a commit point can look as if it lay before it.
    """
    kept = [w for w in words if w.end > commit_at - slack]
    tail = [w.key for w in committed[-max_ngram:]]
    for n in range(min(max_ngram, len(tail), len(kept)), 0, -1):
        if [w.key for w in kept[:n]] == tail[-n:]:
            return kept[n:]
    return kept


def trim_text_overlap(text: str, committed: Sequence[HypWord], max_ngram: int = 20) -> str:
    """Text-only :func:`trim_overlap` for a final job's text (no word times): drop leading words
    that repeat the last committed words (up to a whole sentence: given the committed text as
    its prompt and a little of the committed audio, Whisper may say that sentence again)."""
    parts = text.split()
    keys = [_NORM.sub("", p.lower()) for p in parts]
    tail = [w.key for w in committed[-max_ngram:]]
    for n in range(min(max_ngram, len(tail), len(parts)), 0, -1):
        if keys[:n] == tail[-n:]:
            return " ".join(parts[n:])
    return text.strip()


def words_from_text(text: str, start: float, end: float) -> list[HypWord]:
    """Words of a text without times, spread evenly over ``[start, end]`` (for the prompt and
    overlap matching only; never sent to a client)."""
    parts = text.split()
    if not parts:
        return []
    step = (end - start) / len(parts)
    return [HypWord(" " + p, start + i * step, start + (i + 1) * step) for i, p in enumerate(parts)]
