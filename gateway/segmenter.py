"""Dual-VAD speech segmenter: a pure, synchronous core (no asyncio, no Redis, no clock).

Fed int16 PCM of any chunk length at the session's sample rate, it returns events:
``SpeechStarted``, ``SpeechEnded`` and ``UtteranceReady`` (the 16 kHz audio of one utterance,
ready for STT). All times are seconds of audio since the session began, so the result is the
same however the audio is chunked and however fast it arrives.

How it decides (all at 16 kHz, after resampling):

* Idle: each 30 ms frame goes through WebRTC VAD only, which costs microseconds. A voiced frame
  wakes Silero up; Silero first re-reads the last ``onset_lookback_seconds`` so an onset that
  WebRTC caught late is still placed where Silero hears it begin.
* Checking: Silero windows (32 ms) with probability >= ``silero_sensitivity`` count as speech.
  The onset is the first such window, moved back over at most two windows of rising probability
  (>= the lower, in-speech threshold) because Silero needs a window or two to be sure. Speech is
  confirmed once it spans ``min_speech_seconds`` from the onset (gaps shorter than
  ``onset_gap_seconds`` allowed); only then is ``SpeechStarted`` emitted, with ``t`` = the onset.
  A blip shorter than ``min_speech_seconds`` therefore produces no event at all; the price is
  that ``SpeechStarted`` is emitted about ``min_speech_seconds`` after the real onset (its ``t``
  is still the real onset). Without confirmation within ``check_timeout_seconds`` Silero goes
  back to sleep (noise that fools WebRTC only).
  Optional: ``confirm_seconds`` < ``min_speech_seconds`` emits ``SpeechStarted`` sooner; speech
  that then ends spanning less than ``min_speech_seconds`` gets ``SpeechEnded(cancelled=True)``
  and no ``UtteranceReady`` (the utterance index is reused).
* Speech: a window counts as speech while its probability is >= ``silero_sensitivity -
  silero_end_offset`` (hysteresis, as Silero's own reference code does, so a soft syllable does
  not split an utterance). ``silence_threshold_seconds`` without speech ends the utterance:
  ``SpeechEnded`` (``t`` = end of the last voiced window) and ``UtteranceReady`` (pre-speech
  buffer + speech + a short tail), both emitted when the threshold has elapsed.
* An utterance whose audio reaches ``max_segment_seconds`` is cut at the quietest 30 ms frame of
  the last ``cut_search_seconds`` (``UtteranceReady`` with reason ``max_length``, no vad events)
  and continues as the next utterance index. If that quietest point comes after the speech has
  paused, the utterance simply ends there (``SpeechEnded``, then ``UtteranceReady`` with reason
  ``max_length``), so a continuation always holds speech.
* ``flush()`` ends an open utterance now (reason ``flush``); an unconfirmed candidate is dropped.

With ``use_silero=False`` the same state machine runs on WebRTC's 30 ms decisions alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from gateway.resample import TARGET_RATE, Resampler, check_sample_rate
from gateway.vad import (
    SILERO_CONTEXT,
    SILERO_WINDOW,
    WEBRTC_FRAME_SAMPLES,
    SileroState,
    SileroVad,
    WebRtcVad,
)

log = logging.getLogger(__name__)

SR = TARGET_RATE
FRAME = WEBRTC_FRAME_SAMPLES

#: A pause inside an utterance at least this long (samples) marks where speech resumed.
RESUME_GAP = round(0.2 * SR)

_IDLE = "idle"
_CHECKING = "checking"
_SPEECH = "speech"


@dataclass(frozen=True)
class SegmenterOptions:
    """Segmenter settings; the first eight map one-to-one to the service's env settings."""

    sample_rate: int = 16000  # of the PCM given to feed(); resampled to 16 kHz inside
    webrtc_sensitivity: int = 3  # WebRTC mode 0-3; lower = more sensitive
    silero_sensitivity: float = 0.7  # Silero speech-probability threshold; lower = more sensitive
    silence_threshold_seconds: float = 2.0
    pre_speech_buffer_seconds: float = 1.0
    max_segment_seconds: float = 30.0
    min_speech_seconds: float = 0.25
    # Speech needed before SpeechStarted; None = min_speech_seconds (blips give no event at all).
    confirm_seconds: float | None = None
    use_silero: bool = True
    tail_seconds: float = 0.3  # audio kept after the last voiced window
    silero_end_offset: float = 0.15  # hysteresis once in speech
    onset_lookback_seconds: float = 0.3  # audio Silero re-reads when WebRTC wakes it
    onset_gap_seconds: float = 0.3  # a longer gap before confirmation restarts the onset
    check_timeout_seconds: float = 0.5  # unconfirmed candidate given up after this much quiet
    cut_search_seconds: float = 1.5  # where a max-length cut looks for the quietest frame

    def __post_init__(self) -> None:
        check_sample_rate(self.sample_rate)
        if not 0 <= self.webrtc_sensitivity <= 3:
            raise ValueError("webrtc_sensitivity must be 0-3")
        if not 0.0 <= self.silero_sensitivity <= 1.0:
            raise ValueError("silero_sensitivity must be between 0 and 1")
        if self.silence_threshold_seconds <= 0:
            raise ValueError("silence_threshold_seconds must be > 0")
        if self.pre_speech_buffer_seconds < 0 or self.tail_seconds < 0:
            raise ValueError("pre_speech_buffer_seconds and tail_seconds must be >= 0")
        if self.min_speech_seconds < 0:
            raise ValueError("min_speech_seconds must be >= 0")
        if self.confirm_seconds is not None and not 0 <= self.confirm_seconds <= self.min_speech_seconds:
            raise ValueError("confirm_seconds must be between 0 and min_speech_seconds")
        if not 0 < self.max_segment_seconds <= 30.0:
            # Whisper sees at most 30 s at once; longer audio would be silently truncated.
            raise ValueError("max_segment_seconds must be in (0, 30]")


@dataclass(frozen=True)
class SpeechStarted:
    """Confirmed speech onset; ``t`` excludes the pre-speech buffer.

    ``index`` is the utterance it opens: take it from the event, not from
    ``Segmenter.current_index``, which may have moved on when one ``feed`` returns several events.
    """

    t: float
    index: int


@dataclass(frozen=True)
class SpeechEnded:
    """End of speech (end of the last voiced window), emitted after the silence threshold or a flush.

    ``index`` is the utterance open when speech ended (after a max-length cut, the last piece).
    ``cancelled``: only with ``confirm_seconds`` < ``min_speech_seconds``: it was a blip after
    all, and no ``UtteranceReady`` follows.
    """

    t: float
    index: int
    cancelled: bool = False


@dataclass(frozen=True)
class UtteranceReady:
    """One utterance's audio for STT.

    ``start``/``end`` bound the speech (seconds since session start); ``audio`` (int16, 16 kHz)
    begins at ``audio_start`` (``start`` minus the pre-speech buffer, clipped to the previous
    utterance) and ends a short tail after ``end``. ``reason``: ``silence``, ``max_length`` or
    ``flush``.
    """

    index: int
    start: float
    end: float
    audio: np.ndarray = field(compare=False, repr=False)
    reason: str
    audio_start: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.audio) / SR


Event = SpeechStarted | SpeechEnded | UtteranceReady


class _History:
    """The recent 16 kHz audio as whole 30 ms frames, trimmed at the front.

    One contiguous int16 buffer, the live audio at ``[_lo, _hi)``: appending copies the frame in
    (the buffer is compacted, or doubled, when its end is reached, so O(1) amortised), and a
    slice is one copy of contiguous memory. A deque of frame arrays, the earlier layout, made
    every slice a concatenation of its frames: 32 us for 3 s of audio against 8 us now, paid
    for each final's audio on the way from ``flush`` to its XADD and for each Silero window.
    Frame energies are summed only when a cut asks for the quietest frame.
    """

    def __init__(self, capacity: int = 64 * FRAME) -> None:
        self._buf = np.zeros(capacity, np.int16)
        self._lo = 0  # buffer index of the first live sample (always a frame boundary)
        self._hi = 0
        self.start = 0  # sample index (since session start) of the first live sample

    @property
    def end(self) -> int:
        return self.start + (self._hi - self._lo)

    @property
    def frames(self) -> int:
        """Whole frames held."""
        return (self._hi - self._lo) // FRAME

    def append(self, frame: np.ndarray) -> None:
        if self._hi + FRAME > len(self._buf):
            self._make_room()
        self._buf[self._hi : self._hi + FRAME] = frame
        self._hi += FRAME

    def _make_room(self) -> None:
        """Move the live audio to the front, into a buffer twice as big once it is over half full."""
        live = self._hi - self._lo
        if live + FRAME > len(self._buf) // 2:
            buf = np.empty(len(self._buf) * 2, np.int16)
            buf[:live] = self._buf[self._lo : self._hi]
            self._buf = buf
        else:
            self._buf[:live] = self._buf[self._lo : self._hi]  # numpy copies overlapping ranges safely
        self._lo, self._hi = 0, live

    def trim(self, keep_from: int) -> None:
        drop = min(self.frames, max(0, (keep_from - self.start) // FRAME))
        self._lo += drop * FRAME
        self.start += drop * FRAME

    def slice(self, a: int, b: int) -> np.ndarray:
        """A copy of samples [a, b) (session indices), clipped to what is held."""
        a = max(a, self.start)
        b = min(b, self.end)
        if b <= a:
            return np.zeros(0, np.int16)
        base = self._lo - self.start
        return self._buf[base + a : base + b].copy()

    def quietest_frame(self, a: int, b: int) -> int:
        """Start sample of the lowest-energy whole frame inside [a, b) (the first, on a tie)."""
        i0 = max(0, -(-(a - self.start) // FRAME))
        i1 = min(self.frames, (b - self.start) // FRAME)
        if i1 <= i0:
            return max(a, self.start)
        frames = self._buf[self._lo + i0 * FRAME : self._lo + i1 * FRAME].reshape(-1, FRAME).astype(np.int64)
        best = i0 + int(np.argmin((frames * frames).sum(axis=1)))  # exact: int16 squares fit in int64
        return self.start + best * FRAME


class Segmenter:
    """Turns a session's PCM stream into speech events and utterances. Not thread-safe: one per session."""

    def __init__(self, options: SegmenterOptions, silero: SileroVad | None = None) -> None:
        self.options = options
        self._resampler = Resampler(options.sample_rate)
        self._webrtc = WebRtcVad(options.webrtc_sensitivity)
        self._silero: SileroVad | None = None
        if options.use_silero:
            self._silero = silero if silero is not None else SileroVad.shared()
        self._sstate = SileroState()

        o = options
        self._thr = o.silero_sensitivity
        self._thr_low = max(0.01, o.silero_sensitivity - o.silero_end_offset)
        self._silence = round(o.silence_threshold_seconds * SR)
        # A pre-roll as long as the segment would leave nothing to cut but silence.
        self._pre = round(min(o.pre_speech_buffer_seconds, o.max_segment_seconds / 2) * SR)
        self._max = round(o.max_segment_seconds * SR)
        self._min_speech = round(o.min_speech_seconds * SR)
        confirm = o.min_speech_seconds if o.confirm_seconds is None else o.confirm_seconds
        self._confirm_span = round(confirm * SR)
        self._tail = round(o.tail_seconds * SR)
        self._lookback = round(o.onset_lookback_seconds * SR)
        self._onset_gap = round(o.onset_gap_seconds * SR)
        self._check_timeout = round(o.check_timeout_seconds * SR)
        self._cut_search = round(o.cut_search_seconds * SR)

        self._hist = _History()
        self._pending = np.zeros(0, np.int16)  # < one frame of 16 kHz audio not yet analysed
        self._state = _IDLE
        self._sil_pos = 0  # next Silero window start (sample index)
        self._trigger = 0  # where WebRTC woke Silero
        self._onset: int | None = None
        self._run_start: int | None = None  # start of the current run of likely-speech windows
        self._continued = False  # the open utterance continues a max-length cut
        self._last_voiced_end = 0
        self._audio_start = 0  # first sample of the open utterance's audio (pre-roll included)
        self._utt_start = 0  # speech onset of the open utterance (or the cut it continues from)
        self._floor = 0  # end of the previous utterance's audio: pre-roll never reaches before it
        self._index = 0
        self._resumed_at = 0  # start of the last voiced run that followed a pause (RESUME_GAP)

    # ----------------------------------------------------------------- public API

    def feed(self, pcm: np.ndarray) -> list[Event]:
        """Add PCM (int16, mono, at ``options.sample_rate``); return the events it completes."""
        data = self._resampler.process(pcm)
        if len(self._pending):
            data = np.concatenate([self._pending, data])
        events: list[Event] = []
        n = len(data) // FRAME
        for k in range(n):
            # A view: the history copies the frame in, nothing else keeps it.
            events.extend(self._process_frame(data[k * FRAME : (k + 1) * FRAME]))
        self._pending = data[n * FRAME :].copy()
        return events

    def flush(self) -> list[Event]:
        """End the open utterance now (client ``flush``/``end``). An unconfirmed candidate is dropped."""
        events: list[Event] = []
        if self._state == _SPEECH:
            events = self._finish("flush")
        self._state = _IDLE
        self._onset = None
        return events

    def set_input_rate(self, sample_rate: int) -> None:
        """Switch the client sample rate mid-session (a new ``config``); times continue.

        The old resampler's filter tail (a few ms) is dropped rather than drained: draining
        could complete a frame and produce events this method has no way to return.
        """
        self._resampler = Resampler(sample_rate)
        self.options = replace(self.options, sample_rate=sample_rate)

    @property
    def in_speech(self) -> bool:
        return self._state == _SPEECH

    @property
    def current_index(self) -> int | None:
        """Index of the open utterance, or None between utterances."""
        return self._index if self._state == _SPEECH else None

    @property
    def current_start(self) -> float | None:
        """Speech start of the open utterance, or None between utterances."""
        return self._utt_start / SR if self._state == _SPEECH else None

    @property
    def current_end(self) -> float | None:
        """End of the last voiced window of the open utterance, or None between utterances.

        It stops moving while the speaker pauses: a partial sent since then would only repeat
        the previous one (see ``PartialScheduler.poll(speech_end=...)``).
        """
        return self._last_voiced_end / SR if self._state == _SPEECH else None

    @property
    def now(self) -> float:
        """Seconds of (16 kHz) audio analysed so far."""
        return self._hist.end / SR

    def current_audio(self) -> np.ndarray | None:
        """Audio of the open utterance so far (pre-roll included), for partials; None if none is open."""
        if self._state != _SPEECH:
            return None
        return self._hist.slice(self._audio_start, self._hist.end)

    @property
    def current_audio_start(self) -> float | None:
        """Where the open utterance's audio begins (pre-roll included), or None between utterances."""
        return self._audio_start / SR if self._state == _SPEECH else None

    @property
    def resumed_at(self) -> float | None:
        """Where speech last resumed after a pause of at least ``RESUME_GAP`` inside the open
        utterance (its onset if it never paused); None between utterances."""
        if self._state != _SPEECH:
            return None
        return max(self._resumed_at, self._utt_start) / SR

    def audio_between(self, start: float, end: float) -> np.ndarray:
        """16 kHz audio between two session times, as far as it is still held (streaming
        commits slice the open utterance with it)."""
        return self._hist.slice(round(start * SR), round(end * SR))

    def quietest_point(self, start: float, end: float) -> float:
        """The middle of the quietest 30 ms frame between two session times."""
        return (self._hist.quietest_frame(round(start * SR), round(end * SR)) + FRAME // 2) / SR

    # ----------------------------------------------------------------- internals

    def _process_frame(self, frame: np.ndarray) -> list[Event]:
        start = self._hist.end
        self._hist.append(frame)
        events: list[Event] = []
        if self._silero is None:
            voiced = self._webrtc.is_speech(frame)
            if self._state == _IDLE and voiced:
                self._start_checking(start)
            if self._state != _IDLE:
                events.extend(self._on_unit(start, start + FRAME, voiced, voiced))
        else:
            if self._state == _IDLE and self._webrtc.is_speech(frame):
                self._start_checking(start)
            if self._state != _IDLE:
                events.extend(self._run_silero())
        # Cut before the next frame would take the utterance past the maximum: the audio start
        # need not fall on a frame boundary, so waiting until it is reached could overshoot it
        # by most of a frame (found by the invariant test: 3.012 s against a 3.0 s maximum).
        if self._state == _SPEECH and self._hist.end + FRAME - self._audio_start > self._max:
            events.extend(self._cut())
        self._hist.trim(self._keep_from())
        return events

    def _start_checking(self, frame_start: int) -> None:
        self._state = _CHECKING
        self._trigger = frame_start
        self._onset = None
        self._run_start = None
        self._last_voiced_end = frame_start
        if self._silero is not None:
            self._sstate.reset()
            pos = max(self._hist.start, self._floor, frame_start - self._lookback)
            ctx = self._hist.slice(pos - SILERO_CONTEXT, pos)
            if len(ctx) == SILERO_CONTEXT:
                self._sstate.context = ctx.astype(np.float32) / 32768.0
            self._sil_pos = pos

    def _run_silero(self) -> list[Event]:
        assert self._silero is not None
        n = (self._hist.end - self._sil_pos) // SILERO_WINDOW
        if n <= 0:
            return []
        audio = self._hist.slice(self._sil_pos, self._sil_pos + n * SILERO_WINDOW)
        probs = self._silero.probabilities(self._sstate, audio.astype(np.float32) / 32768.0)
        events: list[Event] = []
        base = self._sil_pos
        self._sil_pos += n * SILERO_WINDOW
        for k, p in enumerate(probs.tolist()):
            s = base + k * SILERO_WINDOW
            events.extend(self._on_unit(s, s + SILERO_WINDOW, p >= self._thr, p >= self._thr_low))
            if self._state == _IDLE:
                break
        return events

    def _on_unit(self, start: int, end: int, strict: bool, loose: bool) -> list[Event]:
        """Advance the state machine by one VAD decision covering samples [start, end)."""
        if self._state == _CHECKING:
            if not loose:
                self._run_start = None
            elif self._run_start is None:
                self._run_start = start
            if strict:
                if self._onset is None or start - self._last_voiced_end > self._onset_gap:
                    # Silero's probability rises over a window or two: start where it rose.
                    rise = self._run_start if self._run_start is not None else start
                    self._onset = max(rise, start - 2 * (end - start), self._floor)
                self._last_voiced_end = end
                if end - self._onset >= self._confirm_span:
                    return self._confirm()
            else:
                quiet_since = max(self._trigger, self._last_voiced_end)
                if self._onset is not None and end - self._last_voiced_end > self._onset_gap:
                    self._onset = None
                if end - quiet_since > self._check_timeout:
                    self._state = _IDLE
            return []
        if self._state == _SPEECH:
            if loose:
                if start - self._last_voiced_end >= RESUME_GAP:
                    self._resumed_at = start  # speech again after a pause inside the utterance
                self._last_voiced_end = end
            elif end - self._last_voiced_end >= self._silence:
                return self._finish("silence")
        return []

    def _confirm(self) -> list[Event]:
        assert self._onset is not None
        self._state = _SPEECH
        self._continued = False
        self._utt_start = self._onset
        self._audio_start = max(self._floor, self._hist.start, self._onset - self._pre)
        log.debug("speech started at %.3f s (utterance %d)", self._onset / SR, self._index)
        return [SpeechStarted(self._onset / SR, self._index)]

    def _utterance_so_far(self, reason: str) -> UtteranceReady | None:
        """The open utterance as it would end now: speech so far plus the tail."""
        end = self._last_voiced_end
        if end <= self._utt_start:
            return None
        audio_end = min(self._hist.end, end + self._tail)
        return UtteranceReady(
            index=self._index,
            start=self._utt_start / SR,
            end=end / SR,
            audio=self._hist.slice(self._audio_start, audio_end),
            reason=reason,
            audio_start=self._audio_start / SR,
        )

    def tentative_utterance(self) -> UtteranceReady | None:
        """What ending the open utterance now would give (reason ``tentative``), without
        ending it. If the speaker does not resume, the ``UtteranceReady`` that comes when the
        silence threshold elapses has the same ``end`` and the same audio, so a transcript
        made from this one during the silence can be used at once (an early final)."""
        if self._state != _SPEECH or not self._tail_complete():
            return None
        return self._utterance_so_far("tentative")

    def _tail_complete(self) -> bool:
        return self._hist.end >= self._last_voiced_end + self._tail

    def _finish(self, reason: str) -> list[Event]:
        end = self._last_voiced_end
        if not self._continued and end - self._utt_start < self._min_speech:
            # Confirmed early (confirm_seconds) but a blip after all.
            self._state = _IDLE
            self._onset = None
            return [SpeechEnded(end / SR, self._index, cancelled=True)]
        events: list[Event] = [SpeechEnded(end / SR, self._index)]
        utterance = self._utterance_so_far(reason)
        if utterance is not None:
            events.append(utterance)
            self._index += 1
            self._floor = min(self._hist.end, end + self._tail)
        self._state = _IDLE
        self._onset = None
        return events

    def _cut(self) -> list[Event]:
        now = self._hist.end
        search_from = max(self._audio_start + FRAME, now - self._cut_search)
        cut = self._hist.quietest_frame(search_from, now) + FRAME // 2
        if cut >= self._last_voiced_end:
            # The speaker has already paused: end the utterance here instead of continuing
            # into a piece that would hold no speech.
            return self._finish("max_length")
        event = UtteranceReady(
            index=self._index,
            start=self._utt_start / SR,
            end=cut / SR,
            audio=self._hist.slice(self._audio_start, cut),
            reason="max_length",
            audio_start=self._audio_start / SR,
        )
        log.debug("utterance %d cut at %.3f s (max length)", self._index, cut / SR)
        self._index += 1
        self._audio_start = self._utt_start = self._floor = cut
        self._continued = True
        return [event]

    def _keep_from(self) -> int:
        """Oldest sample still needed: pre-roll and lookback when idle, the open utterance in speech."""
        now = self._hist.end
        keep = now - self._pre - self._lookback - SILERO_WINDOW
        if self._state == _CHECKING:
            keep = min(keep, self._trigger - self._lookback - SILERO_WINDOW)
            if self._onset is not None:
                keep = min(keep, self._onset - self._pre)
        elif self._state == _SPEECH:
            keep = min(keep, self._audio_start)
        if self._silero is not None and self._state != _IDLE:
            keep = min(keep, self._sil_pos - SILERO_CONTEXT)
        return keep
