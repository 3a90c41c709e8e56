"""When to send a partial (progressive) STT job for a session: a pure, clock-injected core.

The connection handler calls :meth:`PartialScheduler.poll` whenever convenient (after each
audio frame, on a timer at :meth:`PartialScheduler.next_due`) with the current time and the
depth of ``audio_jobs``; the scheduler answers with a :class:`PartialDecision`. Rules (issue 3):

* only while an utterance is open, every ``interval`` seconds (``STT_SEND_INTERVAL``);
* at most one partial job in flight per session: the next waits for the result (or for
  ``inflight_timeout`` seconds, in case the job was lost) and goes out as soon as it is due;
* none for an utterance that has ended, none while partials are off;
* none while the queue is deeper than ``max_queue_depth``: that partial is skipped (counted),
  and the next one is tried an interval later;
* optionally none while the speaker pauses: given the segmenter's ``current_end`` (end of the
  last voiced audio), a partial whose speech has not grown since the previous one is not sent,
  since it would only repeat it (e.g. during the silence that ends an utterance).

The clock is a number passed in (``time.monotonic()`` in production), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

SENT = "sent"
NOT_DUE = "not_due"
NO_UTTERANCE = "no_utterance"
DISABLED = "disabled"
IN_FLIGHT = "in_flight"
OVERLOADED = "overloaded"
NO_NEW_SPEECH = "no_new_speech"


@dataclass(frozen=True)
class PartialOptions:
    interval: float = 0.5  # STT_SEND_INTERVAL
    max_queue_depth: int = 100  # MAX_QUEUE_DEPTH
    enabled: bool = True  # the session's ``partials`` config
    first_after: float | None = None  # delay of the first partial after onset; None = interval
    inflight_timeout: float = 10.0  # a partial result this late is given up on

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.inflight_timeout <= 0:
            raise ValueError("interval and inflight_timeout must be > 0")
        if self.first_after is not None and self.first_after < 0:
            raise ValueError("first_after must be >= 0")


@dataclass(frozen=True)
class PartialDecision:
    """``send``: queue a partial job now for ``index`` with ``partial_seq``; ``reason`` says why (not)."""

    send: bool
    reason: str
    index: int | None = None
    partial_seq: int | None = None


class PartialScheduler:
    """Per-session partial pacing. Not thread-safe: one per connection, used from one task."""

    def __init__(self, options: PartialOptions) -> None:
        self.options = options
        self._enabled = options.enabled
        self._index: int | None = None  # the open utterance
        self._due = 0.0
        self._seq = 0  # per session, increasing: a newer partial overtakes an older one
        self._inflight: tuple[int, int, float] | None = None  # (index, partial_seq, sent_at)
        self._sent_speech_end: float | None = None  # speech_end of the last partial sent
        self.sent = 0
        self.skipped = 0

    # ------------------------------------------------------------- inputs

    def open(self, index: int, now: float) -> None:
        """An utterance was confirmed (SpeechStarted, or continued after a max-length cut)."""
        self._index = index
        self._sent_speech_end = None
        first = self.options.first_after
        self._due = now + (self.options.interval if first is None else first)

    def retarget(self, index: int) -> None:
        """The open utterance's uncommitted tail becomes unit ``index`` (a streaming commit):
        partials go on at the same pace, now for the new index."""
        if self._index is not None:
            self._index = index

    def close(self, index: int) -> None:
        """The utterance ended (its final job is queued): no more partials for it."""
        if self._index == index:
            self._index = None

    def set_enabled(self, enabled: bool) -> None:
        """The client's ``partials`` config changed."""
        self._enabled = enabled

    def on_result(self, index: int, partial_seq: int) -> None:
        """A partial result (or the worker's 'skipped' notice) arrived: the slot is free if it was ours."""
        if self._inflight is not None and self._inflight[:2] == (index, partial_seq):
            self._inflight = None

    # ------------------------------------------------------------- decisions

    @property
    def in_flight(self) -> bool:
        return self._inflight is not None

    @property
    def open_index(self) -> int | None:
        return self._index

    def next_due(self) -> float | None:
        """When ``poll`` could next send; None when nothing is pending. In use: the session
        core's ``deadline`` sets the connection's timer with it (issue 13), keep it."""
        if self._index is None or not self._enabled:
            return None
        if self._inflight is not None:
            return max(self._due, self._inflight[2] + self.options.inflight_timeout)
        return self._due

    def poll(self, now: float, queue_depth: int, speech_end: float | None = None) -> PartialDecision:
        """Decide whether to queue a partial job now; a ``send`` decision marks it in flight.

        ``speech_end``: the segmenter's ``current_end``; when given and unchanged since the last
        partial sent for this utterance, nothing new was said and no partial goes.
        """
        if not self._enabled:
            return PartialDecision(False, DISABLED)
        if self._index is None:
            return PartialDecision(False, NO_UTTERANCE)
        if now < self._due:
            return PartialDecision(False, NOT_DUE, self._index)
        if self._inflight is not None:
            if now - self._inflight[2] < self.options.inflight_timeout:
                return PartialDecision(False, IN_FLIGHT, self._index)
            self._inflight = None  # lost (worker died, job dropped): free the slot
        # The next one is an interval from now whatever happens, so a skip is counted once.
        self._due = now + self.options.interval
        if speech_end is not None and speech_end == self._sent_speech_end:
            return PartialDecision(False, NO_NEW_SPEECH, self._index)
        if queue_depth > self.options.max_queue_depth:
            self.skipped += 1
            return PartialDecision(False, OVERLOADED, self._index)
        self._seq += 1
        self._sent_speech_end = speech_end
        self._inflight = (self._index, self._seq, now)
        self.sent += 1
        return PartialDecision(True, SENT, self._index, self._seq)
