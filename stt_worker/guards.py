"""Hallucination guards and audio normalisation: pure functions, no model inside.

Whisper invents text when given silence or noise ("Thank you.", "Thanks for watching!")
and can loop on a phrase.  The engine runs these checks on every decoded segment:

* **silence gate** (before inference): input whose RMS is below ``silence_rms_dbfs`` is
  not transcribed at all.  Cheap, and the commonest source of invented text.
* **no-speech rule** (Whisper's own): drop a segment whose ``no_speech_prob`` is above
  ``no_speech_threshold`` AND whose ``avg_logprob`` is below ``logprob_threshold``.  Both
  must hold: a confident decode with a high no-speech score is usually real speech.
* **known silence phrases**: the handful of phrases Whisper emits on non-speech are
  dropped when the segment is also doubtful (``no_speech_prob`` above
  ``phrase_no_speech_threshold`` or ``avg_logprob`` below ``phrase_logprob_threshold``) or
  the whole input is quiet (RMS below ``quiet_rms_dbfs``).  A clearly spoken
  "thank you" keeps its text.
* **doubtful language**: when the language was detected (no hint) with probability
  below ``language_doubt_probability`` and ``no_speech_prob`` is above
  ``no_speech_threshold``, the segment is dropped: on noise, Whisper picks an unlikely
  language and decodes digits or syllables with a fair log-probability.
* **repetition loops**: a segment is dropped when at least ``loop_coverage`` of its
  word tokens (split on any non-word character, so "4-4-4-4" counts) sit in loops (a
  1..8-token phrase repeated more than ``max_repeats`` times in a row).  Smaller loops
  are collapsed to one occurrence; a segment whose text is still highly compressible
  (zlib ratio above ``compression_ratio_threshold``) is dropped.
* **repeated phrases** (issue 14): a phrase of at least ``phrase_min_words`` words said twice
  or more in a row ("Turn left at the next corner. Turn left at the next corner. Turn left at
  the next corner.") is kept once. Below the loop rule's threshold and compressible enough to
  pass the zlib ratio, this is what Whisper does on a short window; people hardly ever repeat
  a whole phrase back to back, while "no, no, no" (one word) is left alone.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

#: Phrases Whisper is known to produce on silence or noise (normalised: lower case, no
#: punctuation).  Kept short on purpose: only phrases seen in the wild.
SILENCE_PHRASES: frozenset[str] = frozenset(
    {
        "thank you",
        "thank you very much",
        "thanks",
        "thanks for watching",
        "thank you for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "subscribe to my channel",
        "like and subscribe",
        "bye",
        "bye bye",
        "you",
        "oh",
        "hmm",
        "so",
        "the end",
        "subtitles by the amaraorg community",
        "transcription by castingwords",
        "gracias",
        "gracias por ver el video",
        "grazie",
        "grazie a tutti",
        "sottotitoli creati dalla comunità amaraorg",
        "subtítulos realizados por la comunidad de amaraorg",
        "untertitel im auftrag des zdf 2017",
        "sous titres réalisés par la communauté damaraorg",
        "продолжение следует",
    }
)

_PUNCT = re.compile(r"[^\w\s-]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class GuardOptions:
    """Thresholds for the guards; the defaults are Whisper's own where it has one."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    max_repeats: int = 3
    phrase_no_speech_threshold: float = 0.3
    phrase_logprob_threshold: float = -0.7
    language_doubt_probability: float = 0.6
    loop_coverage: float = 0.5
    #: Below this the input is not transcribed (digital silence, unplugged mic).
    silence_rms_dbfs: float = -60.0
    #: Below this a known silence phrase is always dropped.
    quiet_rms_dbfs: float = -45.0
    #: A phrase at least this long repeated back to back is kept once.
    phrase_min_words: int = 3


@dataclass(frozen=True)
class SegmentVerdict:
    """What to keep of one segment: ``text`` ("" when dropped) and why it changed."""

    text: str
    dropped_reason: str | None = None
    collapsed_repetition: bool = False


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio in [-1, 1], in dBFS (-inf for empty or all-zero input)."""
    if audio.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def normalize_audio(
    audio: np.ndarray,
    *,
    target_rms_dbfs: float = -20.0,
    peak_limit: float = 0.97,
    max_gain_db: float = 30.0,
    floor_dbfs: float = -60.0,
) -> np.ndarray:
    """RMS-normalise to ``target_rms_dbfs`` without clipping past ``peak_limit``.

    Gain is capped at ``max_gain_db`` and input below ``floor_dbfs`` is returned unchanged,
    so silence is not amplified into audible noise that Whisper would then transcribe.
    """
    level = rms_dbfs(audio)
    if not math.isfinite(level) or level < floor_dbfs:
        return audio
    gain_db = min(target_rms_dbfs - level, max_gain_db)
    gain = 10.0 ** (gain_db / 20.0)
    peak = float(np.max(np.abs(audio)))
    if peak * gain > peak_limit:
        gain = peak_limit / peak
    return (audio * gain).astype(np.float32, copy=False)


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, single spaces: for phrase matching."""
    text = _PUNCT.sub("", text.lower()).replace("-", " ")
    return _SPACES.sub(" ", text).strip()


def compression_ratio(text: str) -> float:
    """zlib ratio as Whisper computes it; high means repetitive."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def collapse_repetitions(text: str, max_repeats: int = 3, max_ngram: int = 8) -> tuple[str, bool]:
    """Collapse a phrase repeated more than ``max_repeats`` times in a row to one occurrence.

    Words are compared case- and punctuation-insensitively; returns (text, changed).
    ``max_repeats`` allows natural repetition ("no, no, no").
    """
    words = text.split()
    keys = [normalize_text(w) for w in words]
    changed = False
    i = 0
    out: list[str] = []
    while i < len(words):
        collapsed = False
        for n in range(1, max_ngram + 1):
            if i + n * (max_repeats + 1) > len(words):
                break
            phrase = keys[i : i + n]
            if not any(phrase):
                continue
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == phrase:
                reps += 1
            if reps > max_repeats:
                out.extend(words[i : i + n])
                i += reps * n
                collapsed = changed = True
                break
        if not collapsed:
            out.append(words[i])
            i += 1
    return " ".join(out), changed


def collapse_repeated_phrases(text: str, min_words: int = 3, max_repeats: int = 3) -> tuple[str, bool]:
    """Keep once a phrase of ``min_words`` or more words repeated back to back (up to
    ``max_repeats`` times: more is a loop, which the loop and zlib rules drop).

    Words are compared case- and punctuation-insensitively. Returns (text, changed).
    """
    words = text.split()
    keys = [normalize_text(w) for w in words]
    changed = False
    i = 0
    while i < len(words):
        # The shortest repeated phrase at this position is the unit of the repetition.
        for n in range(min_words, (len(words) - i) // 2 + 1):
            phrase = keys[i : i + n]
            if not all(phrase):
                continue
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == phrase:
                reps += 1
            if reps > 1:
                if reps <= max_repeats:
                    del words[i + n : i + reps * n]
                    del keys[i + n : i + reps * n]
                    changed = True
                break
        i += 1
    return " ".join(words), changed


def loop_fraction(text: str, max_repeats: int = 3, max_ngram: int = 8) -> float:
    """Fraction of the word tokens of ``text`` that sit in repetition loops."""
    tokens = [t.lower() for t in _WORD.findall(text)]
    if not tokens:
        return 0.0
    in_loop = [False] * len(tokens)
    for n in range(1, max_ngram + 1):
        i = 0
        while i + n * (max_repeats + 1) <= len(tokens):
            reps = 1
            while tokens[i + reps * n : i + (reps + 1) * n] == tokens[i : i + n]:
                reps += 1
            if reps > max_repeats:
                for k in range(i, i + reps * n):
                    in_loop[k] = True
                i += reps * n
            else:
                i += 1
    return sum(in_loop) / len(tokens)


def judge_segment(
    text: str,
    *,
    no_speech_prob: float,
    avg_logprob: float,
    input_rms_dbfs: float,
    options: GuardOptions,
    language_probability: float | None = None,
) -> SegmentVerdict:
    """Apply the segment guards (module docstring) to one decoded segment.

    ``language_probability`` is the detection probability when the language was
    detected, None when it was given (a hint or an English-only model).
    """
    stripped = text.strip()
    if not stripped:
        return SegmentVerdict("", "empty")
    if no_speech_prob > options.no_speech_threshold and (
        avg_logprob < options.logprob_threshold
        or (language_probability is not None and language_probability < options.language_doubt_probability)
    ):
        return SegmentVerdict("", "no_speech")
    if loop_fraction(stripped, options.max_repeats) >= options.loop_coverage:
        return SegmentVerdict("", "repetition")
    if normalize_text(stripped) in SILENCE_PHRASES and (
        no_speech_prob > options.phrase_no_speech_threshold
        or avg_logprob < options.phrase_logprob_threshold
        or input_rms_dbfs < options.quiet_rms_dbfs
    ):
        return SegmentVerdict("", "silence_phrase")
    collapsed, changed = collapse_repetitions(stripped, options.max_repeats)
    collapsed, phrase_changed = collapse_repeated_phrases(
        collapsed, options.phrase_min_words, options.max_repeats
    )
    changed = changed or phrase_changed
    if compression_ratio(collapsed) > options.compression_ratio_threshold:
        return SegmentVerdict("", "repetition")
    return SegmentVerdict(collapsed, None, changed)
