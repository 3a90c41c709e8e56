"""Hallucination guards and audio normalisation (pure functions)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stt_worker.guards import (
    GuardOptions,
    collapse_repeated_phrases,
    collapse_repetitions,
    compression_ratio,
    judge_segment,
    loop_fraction,
    normalize_audio,
    normalize_text,
    rms_dbfs,
)

OPTS = GuardOptions()


def judge(text: str, nsp: float = 0.01, lp: float = -0.2, level: float = -20.0):
    return judge_segment(text, no_speech_prob=nsp, avg_logprob=lp, input_rms_dbfs=level, options=OPTS)


def test_confident_speech_is_kept() -> None:
    v = judge("The weather is nice today.")
    assert v.text == "The weather is nice today."
    assert v.dropped_reason is None


def test_no_speech_needs_both_conditions() -> None:
    assert judge("Hello there.", nsp=0.9, lp=-1.5).dropped_reason == "no_speech"
    # High no-speech probability but a confident decode: real (quiet) speech.
    assert judge("Hello there.", nsp=0.9, lp=-0.3).text == "Hello there."
    # Low log-probability alone: a hard utterance, not silence.
    assert judge("Hello there.", nsp=0.1, lp=-1.5).text == "Hello there."


def test_silence_phrase_dropped_when_doubtful_or_quiet() -> None:
    assert judge("Thank you.", nsp=0.4).dropped_reason == "silence_phrase"
    assert judge(" Thanks for watching!", lp=-0.9).dropped_reason == "silence_phrase"
    assert judge("Thank you.", level=-50.0).dropped_reason == "silence_phrase"
    # Clearly spoken "thank you" in a normal-level utterance is kept.
    assert judge("Thank you.", nsp=0.02, lp=-0.1).text == "Thank you."


def test_repetition_loop_is_collapsed() -> None:
    preamble = "I think that after the long meeting with the whole team tomorrow morning "
    v = judge(preamble + "we should go. " * 4)
    assert v.collapsed_repetition
    assert v.text.count("we should go.") == 1
    assert v.dropped_reason is None


def test_text_that_is_mostly_a_loop_is_dropped() -> None:
    assert judge("I think that " + "we should go. " * 8).dropped_reason == "repetition"


def test_natural_repetition_is_kept() -> None:
    out, changed = collapse_repetitions("no, no, no, I said no")
    assert not changed
    assert out == "no, no, no, I said no"


def test_single_word_loop_collapsed() -> None:
    out, changed = collapse_repetitions("okay " * 30)
    assert changed
    assert out == "okay"


def test_highly_compressible_text_is_dropped() -> None:
    # A loop of a long unit (beyond the n-gram collapse) is still caught by the ratio.
    unit = "one two three four five six seven eight nine ten eleven twelve "
    v = judge(unit * 10)
    assert compression_ratio(unit * 10) > OPTS.compression_ratio_threshold
    assert v.dropped_reason == "repetition"


def test_empty_text() -> None:
    assert judge("   ").dropped_reason == "empty"


def test_normalize_text() -> None:
    assert normalize_text("  Thanks for watching!! ") == "thanks for watching"
    assert normalize_text("Subtitles by the Amara.org community") == ("subtitles by the amaraorg community")


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.zeros(100, np.float32)) == -math.inf
    assert rms_dbfs(np.zeros(0, np.float32)) == -math.inf
    full = np.ones(100, np.float32)
    assert abs(rms_dbfs(full)) < 1e-6


def test_normalize_raises_quiet_speech_to_target() -> None:
    rng = np.random.default_rng(0)
    quiet = (0.01 * rng.standard_normal(16000)).astype(np.float32)
    out = normalize_audio(quiet)
    assert abs(rms_dbfs(out) - (-20.0)) < 0.5
    assert out.dtype == np.float32


def test_normalize_leaves_silence_alone() -> None:
    silence = np.full(16000, 1e-5, np.float32)
    assert normalize_audio(silence) is silence


@given(st.lists(st.floats(-1.0, 1.0, allow_nan=False, width=32), min_size=1, max_size=400))
def test_normalize_never_clips(samples: list[float]) -> None:
    audio = np.asarray(samples, np.float32)
    out = normalize_audio(audio)
    assert float(np.max(np.abs(out))) <= max(0.97, float(np.max(np.abs(audio)))) + 1e-6


def test_doubtful_detected_language_with_no_speech_is_dropped() -> None:
    # Seen on loud white noise with base: "1-2-3-4-4-4-..." in Norwegian Nynorsk.
    kw = {"no_speech_prob": 0.73, "avg_logprob": -0.47, "input_rms_dbfs": -10.0}
    v = judge_segment("Hei på deg", options=OPTS, language_probability=0.53, **kw)
    assert v.dropped_reason == "no_speech"
    # Confident detection, or a language given by the client: kept.
    assert judge_segment("Hei på deg", options=OPTS, language_probability=0.95, **kw).text
    assert judge_segment("Hei på deg", options=OPTS, language_probability=None, **kw).text


def test_hyphenated_loop_is_dropped() -> None:
    v = judge("1-2-3-4-4-4-4-4-4-4-4-4-4-4-4-4-4")
    assert v.dropped_reason == "repetition"
    assert loop_fraction("1-2-3-4-4-4-4-4-4-4-4-4-4-4-4-4-4") > 0.7
    assert loop_fraction("The weather is nice today") == 0.0


def test_sentence_said_three_times_is_kept_once() -> None:
    """Issue 14: base with ENCODER_WINDOW=dynamic gave this for "Turn left at the next corner."
    (WER 0.80); neither the loop rule (more than three repeats) nor the zlib ratio caught it."""
    looped = "Turn left at the next corner. Turn left at the next corner. Turn left at the next corner."
    assert compression_ratio(looped) < OPTS.compression_ratio_threshold
    v = judge(looped)
    assert v.text == "Turn left at the next corner."
    assert v.collapsed_repetition and v.dropped_reason is None
    assert collapse_repeated_phrases("Great, which train are we? Great, which train are we?") == (
        "Great, which train are we?", True)


def test_short_or_separated_repeats_are_speech() -> None:
    assert collapse_repeated_phrases("no, no, no, I said no") == ("no, no, no, I said no", False)
    assert collapse_repeated_phrases("yes yes") == ("yes yes", False)
    text = "we can go now, or we can go later, and we can go now"
    assert collapse_repeated_phrases(text) == (text, False)
