"""Language stickiness: confident detections carry over, doubtful ones do not flip it."""

from __future__ import annotations

from gateway.language_memory import StickyLanguage
from stt_worker.detection import choose_language


def test_a_confident_detection_carries_over_and_a_doubtful_one_does_not_flip_it() -> None:
    memory = StickyLanguage()
    memory.observe("it", 0.4)  # doubtful first: nothing to carry yet
    assert memory.hint is None
    memory.observe("it", 0.93)
    assert memory.hint == "it"
    memory.observe("th", 0.31)  # the short, unsure utterance
    assert memory.hint == "it"
    memory.observe("es", 0.9)  # the speaker switched, and the model is sure
    assert memory.hint == "es"
    memory.reset()
    assert memory.hint is None


def test_the_worker_keeps_the_hint_over_a_doubtful_detection_only() -> None:
    doubtful = [("th", 0.31), ("it", 0.2), ("es", 0.1)]
    assert choose_language(doubtful, frozenset(), "it").language == "it"
    assert choose_language([("es", 0.92), ("it", 0.05)], frozenset(), "it").language == "es"
    assert choose_language(doubtful, frozenset(), None).language == "th"
