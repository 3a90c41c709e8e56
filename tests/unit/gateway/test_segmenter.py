"""Unit tests of the dual-VAD segmenter on synthetic and fixture audio (real WebRTC and Silero)."""

from __future__ import annotations

import itertools
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.resample import UnsupportedSampleRate
from gateway.segmenter import (
    Event,
    Segmenter,
    SegmenterOptions,
    SpeechEnded,
    SpeechStarted,
    UtteranceReady,
)
from tests.synthetic_speech import SR, compose, vowel

TOL = 0.1  # seconds: the accuracy bound for onsets and ends
FIXTURES = Path(__file__).parents[2] / "fixtures" / "gateway"


def run(seg: Segmenter, pcm: np.ndarray, chunk: int = 1600, flush: bool = True) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(pcm), chunk):
        events.extend(seg.feed(pcm[i : i + chunk]))
    if flush:
        events.extend(seg.flush())
    return events


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def spans(events: list[Event]) -> list[tuple[float, float]]:
    return [(u.start, u.end) for u in of(events, UtteranceReady)]


def assert_spans(got: list[tuple[float, float]], want: list[tuple[float, float]]) -> None:
    assert len(got) == len(want), (got, want)
    for (gs, ge), (ws, we) in zip(got, want, strict=True):
        assert abs(gs - ws) <= TOL, (got, want)
        assert abs(ge - we) <= TOL, (got, want)


def load_fixture(name: str) -> tuple[np.ndarray, dict]:
    with wave.open(str(FIXTURES / f"{name}.wav")) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm, json.loads((FIXTURES / f"{name}.json").read_text())


def merge(speech: list[dict], silence: float) -> list[tuple[float, float]]:
    """Clips separated by less than the silence threshold form one utterance."""
    out: list[tuple[float, float]] = []
    for clip in speech:
        if out and clip["onset"] - out[-1][1] < silence:
            out[-1] = (out[-1][0], clip["end"])
        else:
            out.append((clip["onset"], clip["end"]))
    return out


# ------------------------------------------------------------------ tests


def test_vowel_bursts_give_utterances_at_the_true_times() -> None:
    pcm = compose([(1.0, vowel(1.5)), (2.7, vowel(0.8)), (2.6, vowel(2.0)), (2.5, None)])
    events = run(Segmenter(SegmenterOptions()), pcm)
    assert_spans(spans(events), [(1.0, 2.5), (5.2, 6.0), (8.6, 10.6)])
    starts, ends = of(events, SpeechStarted), of(events, SpeechEnded)
    assert [round(e.t, 1) for e in starts] == [1.0, 5.2, 8.6]
    assert [round(e.t, 1) for e in ends] == [2.5, 6.0, 10.6]
    utts = of(events, UtteranceReady)
    assert [u.index for u in utts] == [0, 1, 2]
    assert [e.index for e in starts] == [0, 1, 2] and [e.index for e in ends] == [0, 1, 2]
    assert all(u.reason == "silence" for u in utts)
    # Events come in order: started, ended, ready for each utterance.
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "SpeechEnded", "UtteranceReady"] * 3


def test_utterance_audio_has_pre_roll_and_short_tail() -> None:
    opts = SegmenterOptions(pre_speech_buffer_seconds=0.5, tail_seconds=0.2)
    pcm = compose([(1.5, vowel(1.0)), (3.0, None)])
    (utt,) = of(run(Segmenter(opts), pcm), UtteranceReady)
    assert abs(utt.audio_start - (utt.start - 0.5)) < 1e-6
    assert utt.audio.dtype == np.int16
    assert abs(utt.duration - (utt.end + 0.2 - utt.audio_start)) < 1e-3
    # The audio really is the input at those times.
    a = round(utt.audio_start * SR)
    assert np.array_equal(utt.audio, pcm[a : a + len(utt.audio)])


def test_pre_roll_never_reaches_into_the_previous_utterance() -> None:
    opts = SegmenterOptions(silence_threshold_seconds=0.6, pre_speech_buffer_seconds=1.0)
    pcm = compose([(1.0, vowel(1.0)), (0.9, vowel(1.0)), (1.5, None)])
    first, second = of(run(Segmenter(opts), pcm), UtteranceReady)
    assert second.audio_start >= first.audio_start + first.duration - 1e-6


@pytest.mark.parametrize("name", ["speech_piper", "speech_espeak"])
@pytest.mark.parametrize("silence", [2.0, 0.8])
def test_fixture_speech_onsets_and_ends(name: str, silence: float) -> None:
    pcm, meta = load_fixture(name)
    opts = SegmenterOptions(silence_threshold_seconds=silence)
    events = run(Segmenter(opts), pcm)
    assert_spans(spans(events), merge(meta["speech"], silence))


@pytest.mark.parametrize("name", ["speech_piper", "speech_espeak"])
def test_fixture_speech_in_noise_at_20_db_snr(name: str) -> None:
    pcm, meta = load_fixture(name)
    speech = np.concatenate([pcm[round(c["onset"] * SR) : round(c["end"] * SR)] for c in meta["speech"]])
    noise_rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2) / 10 ** (20 / 10))
    noisy = pcm + np.random.default_rng(13).standard_normal(len(pcm)) * noise_rms
    noisy_pcm = np.clip(np.round(noisy), -32768, 32767).astype(np.int16)
    events = run(Segmenter(SegmenterOptions(silence_threshold_seconds=0.8)), noisy_pcm)
    assert_spans(spans(events), merge(meta["speech"], 0.8))


def test_noise_and_tones_give_no_utterance() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    white = rng.standard_normal(4 * SR) * 0.1
    brown = np.cumsum(rng.standard_normal(3 * SR))
    brown = (brown - np.convolve(brown, np.ones(400) / 400, mode="same")) * 0.02
    tones = np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in (440, 1000, 3000)])
    x = np.concatenate([white, brown, tones])
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    seg = Segmenter(SegmenterOptions(webrtc_sensitivity=0))
    assert run(seg, pcm) == []


def test_blip_is_ignored_but_a_short_word_is_not() -> None:
    opts = SegmenterOptions(min_speech_seconds=0.25)
    assert run(Segmenter(opts), compose([(1.0, vowel(0.12)), (2.5, None)])) == []
    events = run(Segmenter(opts), compose([(1.0, vowel(0.45)), (2.5, None)]))
    assert_spans(spans(events), [(1.0, 1.45)])


def test_early_confirmation_cancels_a_blip() -> None:
    opts = SegmenterOptions(min_speech_seconds=0.3, confirm_seconds=0.1)
    seg = Segmenter(opts)
    events = run(seg, compose([(1.0, vowel(0.18)), (2.5, vowel(0.8)), (2.5, None)]))
    assert [type(e).__name__ for e in events] == [
        "SpeechStarted", "SpeechEnded", "SpeechStarted", "SpeechEnded", "UtteranceReady"
    ]
    blip_end, real_end = of(events, SpeechEnded)
    assert blip_end.cancelled and not real_end.cancelled
    (utt,) = of(events, UtteranceReady)
    assert utt.index == 0 and abs(utt.start - 3.68) <= TOL  # the blip's index is reused
    with pytest.raises(ValueError):
        SegmenterOptions(min_speech_seconds=0.2, confirm_seconds=0.3)


def test_speech_started_is_emitted_soon_after_the_onset() -> None:
    opts = SegmenterOptions(min_speech_seconds=0.15)
    seg = Segmenter(opts)
    pcm = compose([(1.0, vowel(1.0)), (1.0, None)])
    emitted_at = None
    for i in range(0, len(pcm), 480):
        if of(seg.feed(pcm[i : i + 480]), SpeechStarted):
            emitted_at = seg.now
            break
    assert emitted_at is not None
    # Confirmation needs min_speech_seconds of speech, plus at most one Silero window and frame.
    assert 1.0 + 0.15 <= emitted_at <= 1.0 + 0.15 + 0.1


def test_open_utterance_is_visible_for_partials() -> None:
    seg = Segmenter(SegmenterOptions(pre_speech_buffer_seconds=0.5))
    assert seg.current_audio() is None and seg.current_index is None and not seg.in_speech
    run(seg, compose([(1.0, vowel(1.2))], seed=4), flush=False)
    assert seg.in_speech and seg.current_index == 0
    audio = seg.current_audio()
    assert audio is not None and abs(len(audio) / SR - (seg.now - 0.5)) < 0.05
    assert seg.current_start is not None and abs(seg.current_start - 1.0) < TOL
    assert seg.current_end is not None and abs(seg.current_end - 2.2) < TOL


def test_flush_ends_the_open_utterance_now() -> None:
    seg = Segmenter(SegmenterOptions())
    run(seg, compose([(1.0, vowel(1.2))], seed=5), flush=False)
    events = seg.flush()
    assert [type(e) for e in events] == [SpeechEnded, UtteranceReady]
    utt = events[1]
    assert isinstance(utt, UtteranceReady)
    assert utt.reason == "flush" and utt.index == 0 and abs(utt.end - 2.2) <= TOL
    assert not seg.in_speech and seg.flush() == []
    # The session goes on: the next utterance gets the next index.
    later = run(seg, compose([(0.5, vowel(0.8)), (2.5, None)], seed=6))
    assert [u.index for u in of(later, UtteranceReady)] == [1]


def test_flush_drops_an_unconfirmed_candidate() -> None:
    seg = Segmenter(SegmenterOptions(min_speech_seconds=0.5))
    run(seg, compose([(1.0, vowel(0.2))], seed=7), flush=False)
    assert seg.flush() == []


def fixture_clips() -> list[np.ndarray]:
    """Every speech clip of the fixtures, cut out at its true onset and end."""
    clips = []
    for name in ("speech_piper", "speech_espeak"):
        pcm, meta = load_fixture(name)
        for c in meta["speech"]:
            clips.append(pcm[round(c["onset"] * SR) : round(c["end"] * SR)] / 32768.0)
    return clips


def test_long_speech_is_cut_at_quiet_points_under_the_max_length() -> None:
    clips = fixture_clips()
    parts: list[tuple[float, np.ndarray | None]] = [(1.0, clips[0])]
    parts += [(0.25, c) for c in clips[1:]] + [(2.5, None)]
    pcm = compose(parts)
    speech_end = 1.0 + sum(len(c) for c in clips) / SR + 0.25 * (len(clips) - 1)
    opts = SegmenterOptions(max_segment_seconds=4.0, pre_speech_buffer_seconds=0.5)
    events = run(Segmenter(opts), pcm)
    utts = of(events, UtteranceReady)
    assert len(of(events, SpeechStarted)) == 1
    (ended,) = of(events, SpeechEnded)
    assert [u.index for u in utts] == list(range(len(utts)))
    assert len(utts) >= 3 and ended.index == utts[-1].index
    assert {u.reason for u in utts[:-1]} == {"max_length"} and utts[-1].reason == "silence"
    assert all(u.duration <= 4.0 + 1e-6 for u in utts)
    frame_energy = np.square(pcm[: len(pcm) // 480 * 480].reshape(-1, 480) / 32768.0).mean(axis=1)
    loud = np.median(frame_energy[frame_energy > 1e-4])
    for u in utts[:-1]:
        # Cut in the middle of the quietest frame: far quieter than the speech around it.
        assert frame_energy[round(u.end * SR) // 480] < 0.05 * loud
    # The pieces are contiguous: no audio lost or repeated at a cut.
    for a, b in itertools.pairwise(utts):
        assert abs(a.audio_start + a.duration - b.audio_start) < 1e-6
        assert b.start == a.end
    assert abs(utts[-1].end - speech_end) <= TOL


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampled_input_segments_like_16k(rate: int) -> None:
    pcm = compose([(1.0, vowel(1.3)), (2.6, vowel(0.9)), (2.5, None)], seed=8)
    ref = spans(run(Segmenter(SegmenterOptions()), pcm))
    other = soxr.resample(pcm, SR, rate).astype(np.int16)
    got = spans(run(Segmenter(SegmenterOptions(sample_rate=rate)), other, chunk=rate // 10))
    assert len(got) == len(ref) == 2
    for (gs, ge), (rs, re) in zip(got, ref, strict=True):
        assert abs(gs - rs) <= 0.05 and abs(ge - re) <= 0.05


def test_chunk_sizes_do_not_change_the_result() -> None:
    pcm = compose([(1.0, vowel(1.0)), (2.4, vowel(0.7)), (2.4, None)], seed=9)
    ref = run(Segmenter(SegmenterOptions()), pcm, chunk=480)
    rng = np.random.default_rng(0)
    seg = Segmenter(SegmenterOptions())
    got: list[Event] = []
    i = 0
    while i < len(pcm):
        n = int(rng.integers(1, 5000))
        got.extend(seg.feed(pcm[i : i + n]))
        i += n
    got.extend(seg.flush())
    assert got == ref  # audio is compare=False; times and indices must match exactly
    for a, b in zip(of(got, UtteranceReady), of(ref, UtteranceReady), strict=True):
        assert np.array_equal(a.audio, b.audio)


def test_one_big_chunk_gives_every_event_with_its_index() -> None:
    pcm = compose([(1.0, vowel(1.0)), (2.5, vowel(0.8)), (2.5, None)], seed=10)
    seg = Segmenter(SegmenterOptions())
    events = seg.feed(pcm)  # the whole session at once: the events carry their own indices
    assert [(type(e).__name__, e.index) for e in events] == [
        ("SpeechStarted", 0), ("SpeechEnded", 0), ("UtteranceReady", 0),
        ("SpeechStarted", 1), ("SpeechEnded", 1), ("UtteranceReady", 1),
    ]
    assert seg.current_index is None


def test_webrtc_only_mode() -> None:
    pcm = compose([(1.0, vowel(1.5)), (2.7, None)])
    events = run(Segmenter(SegmenterOptions(use_silero=False)), pcm)
    ((start, end),) = spans(events)
    # WebRTC alone holds on a few frames after speech (its own hangover): looser at the end.
    assert abs(start - 1.0) <= TOL and 0 <= end - 2.5 <= 0.15


def test_sample_rate_switch_mid_session() -> None:
    seg = Segmenter(SegmenterOptions())
    first = run(seg, compose([(1.0, vowel(1.0)), (2.5, None)]), flush=False)
    seg.set_input_rate(8000)
    pcm8 = soxr.resample(compose([(1.0, vowel(1.0)), (2.5, None)], seed=1), SR, 8000)
    second = run(seg, pcm8.astype(np.int16), chunk=800)
    assert_spans(spans(first) + spans(second), [(1.0, 2.0), (5.5, 6.5)])


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        SegmenterOptions(max_segment_seconds=31)
    with pytest.raises(ValueError):
        SegmenterOptions(webrtc_sensitivity=4)
    with pytest.raises(UnsupportedSampleRate):
        SegmenterOptions(sample_rate=96000)


def test_memory_stays_bounded_over_a_long_session() -> None:
    seg = Segmenter(SegmenterOptions(pre_speech_buffer_seconds=1.0, max_segment_seconds=8.0))
    assert seg.feed(np.zeros(0, np.int16)) == []
    quiet = compose([(120.0, None)], seed=11)
    run(seg, quiet, chunk=16000, flush=False)
    kept = seg._hist.frames * 480 / SR  # white-box: the audio history the segmenter holds
    assert kept <= 1.0 + 0.3 + 0.1
    speech = np.concatenate(fixture_clips() * 3)
    run(seg, compose([(0.0, speech)], seed=12), chunk=16000, flush=False)
    assert seg._hist.frames * 480 / SR <= 8.0 + 0.1


_VOWEL = vowel(0.6)


@settings(max_examples=30, deadline=None)
@example(  # speech starting off a frame boundary used to be cut 12 ms past the maximum
    [("silence", 1), ("silence", 1), ("silence", 1), ("silence", 332), ("noise", 19754), ("speech", 23625),
     ("silence", 809), ("speech", 7317)], 0,
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["silence", "noise", "speech", "loud"]), st.integers(1, 24000)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 2**32 - 1),
)
def test_any_audio_keeps_the_event_invariants(pieces: list[tuple[str, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    chunks = []
    for kind, n in pieces:
        if kind == "silence":
            chunks.append(np.zeros(n, np.int16))
        elif kind == "noise":
            chunks.append((rng.standard_normal(n) * 2000).astype(np.int16))
        elif kind == "loud":
            chunks.append(rng.integers(-32768, 32767, n).astype(np.int16))
        else:
            chunks.append((np.resize(_VOWEL, n) * 32767).astype(np.int16))
    opts = SegmenterOptions(max_segment_seconds=3.0, silence_threshold_seconds=0.5)
    seg = Segmenter(opts)
    events: list[Event] = []
    for c in chunks:
        events.extend(seg.feed(c))
    events.extend(seg.flush())
    open_index: int | None = None  # utterance between SpeechStarted and SpeechEnded
    ended_index: int | None = None  # utterance whose SpeechEnded awaits its UtteranceReady
    next_index = 0
    for e in events:
        if isinstance(e, SpeechStarted):
            assert open_index is None and ended_index is None and e.index == next_index
            open_index = e.index
        elif isinstance(e, UtteranceReady):
            assert e.index == next_index
            assert e.audio_start <= e.start <= e.end and len(e.audio) > 0
            assert e.duration <= opts.max_segment_seconds + 1e-6
            next_index += 1
            if e.reason == "max_length" and ended_index != e.index:
                assert open_index == e.index  # a cut inside speech: the utterance continues
                open_index = next_index
            else:  # the end of speech (a cut that fell after the speaker paused ends it too)
                assert ended_index == e.index
                ended_index = None
        elif isinstance(e, SpeechEnded):
            assert open_index == e.index
            open_index = None
            ended_index = e.index
    assert open_index is None and not seg.in_speech


def test_max_length_reached_during_a_pause_ends_the_utterance() -> None:
    # 3.5 s of speech then a pause; at 4 s of audio (pre-roll 0.5) the quietest point is in
    # the pause, so the utterance ends there instead of continuing into silence.
    pcm = compose([(1.0, np.concatenate(fixture_clips()[:2])[: round(3.4 * SR)]), (3.0, None)])
    opts = SegmenterOptions(max_segment_seconds=4.0, pre_speech_buffer_seconds=0.5)
    events = run(Segmenter(opts), pcm)
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechEnded", "UtteranceReady"]
    (utt,) = of(events, UtteranceReady)
    assert utt.reason == "max_length" and abs(utt.end - 4.4) <= TOL
