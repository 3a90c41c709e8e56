"""Detection restricted to a language set (issue: Italian heard as Thai), with ``base``.

The material is espeak-ng speech that unrestricted detection assigns to a language outside
the set on every CTranslate2 kernel set tried (``benchmarks/ct2_isa.py``,
``benchmarks/language_detection.py``): the demo clip's "Buongiorno, oggi il cielo è
sereno." (Japanese, 0.21-0.26) and "Guten Morgen, wie geht es dir heute?" on the dynamic
window (Latin).  With the session's set the same encoder output answers the right language,
clearly (renormalised probability >= 0.9 here).
"""

from __future__ import annotations

import unicodedata

import pytest

from stt_worker.engine import TranscribeRequest

pytestmark = [pytest.mark.integration, pytest.mark.model_output]

MIN_PROBABILITY = 0.7


def latin_script(text: str) -> bool:
    """True when every letter is Latin: what a reader of Italian or German can read at all."""
    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in text if ch.isalpha())


def test_reference_path_answers_inside_the_session_set(base, traps, record_margin) -> None:
    audio = traps.audio("trap_it_buongiorno")
    session = ("it", "fr", "de")
    free = base.transcribe(TranscribeRequest(audio))
    assert free.language not in session and free.language_probability_scope == "all"
    restricted = base.transcribe(TranscribeRequest(audio, source_languages=session))
    assert restricted.language == "it", (restricted.language, restricted.language_probability)
    assert restricted.language_probability_scope == "set"
    assert restricted.language_outside_set == free.language
    record_margin("p(it | it,fr,de)", restricted.language_probability, MIN_PROBABILITY, "min")
    # The words stay poor (base hears this voice badly in any language), but they are
    # decoded as Italian: Latin letters, not Japanese or Thai script.
    assert restricted.text and latin_script(restricted.text), restricted.text


def test_batched_path_answers_inside_the_session_set(base_path, make_engine, traps, stt, record_margin) -> None:
    engine = make_engine(base_path, batched=True)
    session = ("it", "fr", "de")
    audio = traps.audio("trap_it_buongiorno")
    (free,) = engine.transcribe_batch([TranscribeRequest(audio, partial=True)])
    assert free.language not in session  # Latin on the dynamic window, Japanese on 15-30 s
    # One batch, two sessions: the set is per request, the encoder output is shared.
    restricted, other = engine.transcribe_batch([
        TranscribeRequest(audio, source_languages=session, partial=True),
        TranscribeRequest(stt.audio("es_tiempo"), source_languages=("es", "en"), partial=True),
    ])
    assert (restricted.language, restricted.language_probability_scope) == ("it", "set")
    # What it would have been depends on the batch's window (here es_tiempo's, longer): not
    # necessarily the answer alone, but outside the set either way.
    assert restricted.language_outside_set is not None and restricted.language_outside_set not in session
    record_margin("p(it | it,fr,de)", restricted.language_probability, MIN_PROBABILITY, "min")
    assert restricted.text and latin_script(restricted.text), restricted.text
    assert other.language == "es" and other.language_outside_set is None
    record_margin("p(es | es,en)", other.language_probability, MIN_PROBABILITY, "min")


@pytest.mark.parametrize("path", ["batched", "reference"])
def test_session_hint_keeps_a_doubtful_short_piece_in_the_session_language(
    base, traps, record_margin, path: str
) -> None:
    # Session-level evidence: the first 1.2 s of an Italian sentence alone is unclear to the
    # model: doubtful even within the set.  Which language it ranks first is not stable across
    # CPUs (English or Arabic on one, Italian at p=0.32 on another, int8 kernels differ), so
    # only the doubt is asserted, with its margin.  With the session's confident language as
    # the job's hint it is decoded as Italian; and the hint, not the audio, decides: a hint
    # that is not the audio's own top answer wins too.
    short = traps.audio("it_caffe")[: int(1.2 * 16000)]
    session = ("it", "es", "en", "fr", "de")

    def run(req: TranscribeRequest):
        return base.transcribe_batch([req])[0] if path == "batched" else base.transcribe(req)

    alone = run(TranscribeRequest(short, source_languages=session))
    record_margin("p(alone) below sticky", alone.language_probability, 0.8, "max")
    other = next(code for code in ("es", "fr") if code != alone.language)
    for hint in ("it", other):
        hinted = run(TranscribeRequest(short, source_languages=session, language_hint=hint))
        assert (hinted.language, hinted.language_probability_scope) == (hint, "set"), (hint, alone)


def test_deployment_set_applies_without_a_session_set(base_path, make_engine, traps, record_margin) -> None:
    engine = make_engine(base_path, source_languages=("it", "fr", "de"))
    t = engine.transcribe(TranscribeRequest(traps.audio("trap_it_buongiorno")))
    assert (t.language, t.language_probability_scope) == ("it", "set")
    record_margin("p(it | deployment it,fr,de)", t.language_probability, MIN_PROBABILITY, "min")
    # A hint is the client's word: no detection, whatever the set.
    hinted = engine.transcribe(TranscribeRequest(traps.audio("trap_it_buongiorno"), language="es", partial=True))
    assert (hinted.language, hinted.language_probability, hinted.language_probability_scope) == ("es", 1.0, "hint")
