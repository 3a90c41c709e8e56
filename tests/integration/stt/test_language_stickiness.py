"""The session's language (gateway.language_evidence) with the multilingual base model.

A whole Italian sentence is detected confidently; the session remembers it. The first 1.2 s of
another Italian sentence alone is detected doubtfully (as Arabic, Polish, ... on this material);
it does not flip the session's language, and with that language as the job's hint it stays
Italian. Without the earlier sentence, the session has no confident language and a piece that
short would be held back for more audio of its turn.
"""

from __future__ import annotations

import pytest

from gateway.language_evidence import SessionLanguage, hold_for_more_audio
from stt_worker.engine import STICKY_PROBABILITY, TranscribeRequest, WhisperEngine

pytestmark = pytest.mark.integration
SR = 16000


def test_a_doubtful_detection_does_not_flip_a_confident_session_language(base: WhisperEngine, stt: object) -> None:
    audio = type(stt).audio  # type: ignore[attr-defined]
    whole = audio("it_tempo")
    first = base.transcribe_batch([TranscribeRequest(audio=whole)])[0]
    assert first.language == "it" and first.language_probability >= STICKY_PROBABILITY
    memory = SessionLanguage().observe(first.language, first.language_probability, len(whole) / SR,
                                       first.language_probability_scope)
    assert memory.hint == "it"

    short = audio("it_caffe")[: int(1.2 * SR)]
    alone = base.transcribe_batch([TranscribeRequest(audio=short)])[0]
    assert alone.language_probability < STICKY_PROBABILITY  # the model is unsure here
    fresh = SessionLanguage().observe(alone.language, alone.language_probability, 1.2,
                                      alone.language_probability_scope)
    assert hold_for_more_audio(fresh, 1.2, turn_ended=False)  # alone, it would wait for its turn's rest
    memory = memory.observe(alone.language, alone.language_probability, 1.2, alone.language_probability_scope)
    assert memory.hint == "it"  # ...and after a confident sentence the session keeps its language

    hinted = base.transcribe_batch([TranscribeRequest(audio=short, language_hint=memory.hint)])[0]
    assert hinted.language == "it"
    # The unbatched path (word timestamps) detects first and keeps the hint the same way.
    with_words = base.transcribe_batch([TranscribeRequest(audio=short, language_hint="it", word_timestamps=True)])[0]
    assert with_words.language == "it"


def test_an_english_only_model_answers_as_a_given_language(tiny: WhisperEngine, stt: object) -> None:
    """tiny.en does not detect: its answer is scope ``hint``, decisive at once for the session."""
    audio = type(stt).audio  # type: ignore[attr-defined]
    short = audio("it_caffe")[: int(1.2 * SR)]
    for partial in (True, False):
        t = tiny.transcribe_batch([TranscribeRequest(audio=short, partial=partial)])[0]
        assert (t.language, t.language_probability, t.language_probability_scope) == ("en", 1.0, "hint")
        session = SessionLanguage().observe(t.language, t.language_probability, 1.2, t.language_probability_scope)
        assert session.confident and not hold_for_more_audio(session, 1.2, turn_ended=False)
