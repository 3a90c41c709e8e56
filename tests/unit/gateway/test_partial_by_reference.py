"""Partials by reference, through SessionCore: what each partial asks the writer to append
to the session's audio stream, against the audio it names.

Pure and clock-driven: synthetic voiced audio fed to the real segmenter in 100 ms chunks;
each partial is answered with stable words (so successive hypotheses agree and commits move
the tail's start), and a write failure is reported for some. No sockets, no Redis, no model.
"""

from __future__ import annotations

import numpy as np
import pytest

from common import bus
from common.settings import GatewaySettings
from gateway.session_actions import Action, Clock, QueueAudio
from gateway.session_core import SessionCore
from tests.synthetic_speech import SR, compose, timed_words, vowel

SETTINGS = GatewaySettings(use_silero=False, idle_timeout_seconds=1e6, max_session_seconds=1e7)
CHUNK = SR // 10


@pytest.mark.parametrize("fail_every", [0, 3])
def test_every_partial_names_audio_that_was_appended_once(fail_every: int) -> None:
    pcm = compose([(0.5, vowel(12.0))])  # one long turn, no pause
    core = SessionCore(SETTINGS, "s1", Clock(100.0, 1.7e9))
    t = 0.0
    stream: list[tuple[int, np.ndarray]] = []  # (first sample, audio) appended, in order
    partials: list[QueueAudio] = []

    def take(actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, QueueAudio) and a.job.kind == "partial":
                partials.append(a)
                first, last = a.job.audio_samples  # type: ignore[misc]
                assert last - first == len(a.audio) and a.append_from is not None
                assert first <= a.append_from <= last
                if fail_every and len(partials) % fail_every == 0:
                    take(core.write_failed(a, Clock(100.0 + t, 1.7e9 + t)))  # Redis refused it
                    continue
                if a.append_from < last:
                    stream.append((a.append_from, a.audio[a.append_from - first :]))
                # The worker's view: the samples the job names, from what is on the stream.
                held = np.full(last, -1, np.int32)
                for s, chunk in stream:
                    held[s : s + len(chunk)] = chunk[: max(0, last - s)]
                assert np.array_equal(held[first:last], pcm[first:last].astype(np.int32))
                take(core.on_result(bus.PartialResult(
                    session_id="s1", segment_id=a.job.segment_id, utterance_index=a.job.utterance_index,
                    partial_seq=a.job.partial_seq, text="x", words=timed_words(a.job, 0.4, 0.3),
                    audio_start=a.job.audio_start, audio_end=a.job.end,
                ), Clock(100.0 + t, 1.7e9 + t)))

    for i in range(0, len(pcm), CHUNK):
        t = round(t + CHUNK / SR, 3)
        take(core.feed(pcm[i : i + CHUNK], Clock(100.0 + t, 1.7e9 + t)))

    assert len(partials) >= 8
    tails = sum(len(p.audio) for p in partials)
    appended = sum(len(chunk) for _s, chunk in stream)
    # Commits moved the tail's start (the tails stay short) ...
    assert max(p.job.audio_samples[0] for p in partials) > 4 * SR  # type: ignore[index]
    # ... and the stream got each sample about once, where inline jobs carried every tail.
    assert appended <= len(pcm)
    assert appended < tails / 2


def test_a_partial_skipped_for_missing_audio_makes_the_next_append_its_whole_tail() -> None:
    """The stream lost what the core appended (a Redis restart, an expiry): the worker skips
    the partial (``audio_missing``) and the next partial carries its whole tail to the stream."""
    pcm = compose([(0.5, vowel(4.0))])
    core = SessionCore(SETTINGS, "s1", Clock(100.0, 1.7e9))
    partials: list[QueueAudio] = []
    t = 0.0
    for i in range(0, len(pcm), CHUNK):
        t = round(t + CHUNK / SR, 3)
        clock = Clock(100.0 + t, 1.7e9 + t)
        for a in core.feed(pcm[i : i + CHUNK], clock):
            if isinstance(a, QueueAudio) and a.job.kind == "partial":
                partials.append(a)
                skip = len(partials) == 2
                core.on_result(bus.PartialResult(
                    session_id="s1", segment_id=a.job.segment_id, utterance_index=a.job.utterance_index,
                    partial_seq=a.job.partial_seq, text="" if skip else "x", skipped=skip,
                    skip_reason=bus.SKIP_AUDIO_MISSING if skip else None,
                    audio_start=a.job.audio_start, audio_end=a.job.end,
                ), clock)
    assert len(partials) >= 4
    first_of = [p.job.audio_samples[0] for p in partials]  # type: ignore[index]
    appends = [p.append_from for p in partials]
    assert appends[1] > first_of[1]  # the second appended only what was new ...
    assert appends[2] == first_of[2]  # ... it was skipped for missing audio: the third sends it all
    assert appends[3] > first_of[3]  # and then only the new audio again
