"""Which final jobs carry the committed text as their prompt, through SessionCore.

A span cut inside speech re-sends the overlap (the end of the committed words) as audio; with
those words in the prompt as well, beam search (base) skipped them and often stopped early:
the demo's "so we are going for a walk in the park" came back as "so we are going" in 5 runs
of 5, and with no prompt whole in 5 of 5. So an overlapping span goes without a prompt; a span
that starts on silence keeps it.

Pure and clock-driven: synthetic voiced audio fed to the real segmenter in 100 ms chunks,
partials answered with words that agree in the first piece (an agreement commit inside
speech, so the pause commit after it overlaps) and not in the second (its final job starts
after the pause). No sockets, no Redis, no model.
"""

from __future__ import annotations

from common import bus
from common.settings import GatewaySettings
from gateway.session_actions import Action, Clock, QueueAudio
from gateway.session_core import SessionCore
from tests.synthetic_speech import SR, compose, timed_words, vowel

# Pause commits as final jobs (not from the hypothesis), so both kinds of span are jobs.
SETTINGS = GatewaySettings(use_silero=False, idle_timeout_seconds=1e6, max_session_seconds=1e7,
                           pause_commit_text="final")
CHUNK = SR // 10


def test_a_span_that_repeats_the_overlap_has_no_prompt_and_one_after_a_pause_keeps_it() -> None:
    pcm = compose([(0.5, vowel(4.0)), (0.9, vowel(2.0, seed=1)), (2.6, None)])
    core = SessionCore(SETTINGS, "s1", Clock(100.0, 1.7e9))
    finals: list[bus.AudioJob] = []
    t = 0.0

    def take(actions: list[Action]) -> None:
        for a in actions:
            if not isinstance(a, QueueAudio):
                continue
            if a.job.kind == "final":
                finals.append(a.job)
                continue
            clock = Clock(100.0 + t, 1.7e9 + t)
            take(core.on_result(bus.PartialResult(
                session_id="s1", segment_id=a.job.segment_id, utterance_index=a.job.utterance_index,
                partial_seq=a.job.partial_seq, text="x", words=timed_words(a.job, 0.3, 0.25, agree=t < 5.0),
                audio_start=a.job.audio_start, audio_end=a.job.end,
            ), clock))

    for i in range(0, len(pcm), CHUNK):
        t = round(t + CHUNK / SR, 3)
        take(core.feed(pcm[i : i + CHUNK], Clock(100.0 + t, 1.7e9 + t)))

    overlapping = [j for j in finals if j.audio_start is not None and j.audio_start < j.start]
    on_silence = [j for j in finals if j.audio_start is not None and j.audio_start >= j.start and j.start > 0.5]
    assert overlapping and on_silence, [(j.start, j.audio_start, j.commit) for j in finals]
    assert all(j.prompt is None for j in overlapping)
    assert all(j.prompt for j in on_silence)  # the turn's committed text so far
