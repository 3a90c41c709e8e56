"""Language stickiness with the multilingual base model: right at first, unsure later.

A whole Italian sentence is detected confidently; the session remembers it. The first 1.2 s of
another Italian sentence alone is detected doubtfully (as Arabic, Polish, ... on this material);
with the session's language as the job's hint it stays Italian.
"""

from __future__ import annotations

import pytest

from gateway.language_memory import StickyLanguage
from stt_worker.engine import STICKY_PROBABILITY, TranscribeRequest, WhisperEngine

pytestmark = pytest.mark.integration


def test_a_doubtful_detection_does_not_flip_a_confident_session_language(base: WhisperEngine, stt: object) -> None:
    audio = type(stt).audio  # type: ignore[attr-defined]
    memory = StickyLanguage()
    first = base.transcribe_batch([TranscribeRequest(audio=audio("it_tempo"))])[0]
    assert first.language == "it" and first.language_probability >= STICKY_PROBABILITY
    memory.observe(first.language, first.language_probability)
    assert memory.hint == "it"

    short = audio("it_caffe")[: int(1.2 * 16000)]
    alone = base.transcribe_batch([TranscribeRequest(audio=short)])[0]
    assert alone.language_probability < STICKY_PROBABILITY  # the model is unsure here
    memory.observe(alone.language, alone.language_probability)
    assert memory.hint == "it"  # ...so the session keeps its language

    hinted = base.transcribe_batch([TranscribeRequest(audio=short, language_hint=memory.hint)])[0]
    assert hinted.language == "it"
    # The unbatched path (word timestamps) detects first and keeps the hint the same way.
    with_words = base.transcribe_batch([TranscribeRequest(audio=short, language_hint="it", word_timestamps=True)])[0]
    assert with_words.language == "it"
