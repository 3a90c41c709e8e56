"""Session-level language evidence (gateway.language_evidence): the pure core."""

from __future__ import annotations

from gateway.language_evidence import MIN_EVIDENCE_SECONDS, SessionLanguage, hold_for_more_audio


def test_a_short_first_piece_waits_for_more_audio_of_its_turn() -> None:
    fresh = SessionLanguage()
    assert hold_for_more_audio(fresh, 1.2, turn_ended=False)
    assert not hold_for_more_audio(fresh, MIN_EVIDENCE_SECONDS, turn_ended=False)
    # At the end of the turn there is no more audio to wait for.
    assert not hold_for_more_audio(fresh, 1.2, turn_ended=True)


def test_confidence_needs_both_probability_and_enough_speech() -> None:
    s = SessionLanguage().observe("it", 0.95, 1.0, "set")
    assert s.language == "it" and not s.confident  # sure, but on one second
    assert hold_for_more_audio(s, 0.8, turn_ended=False)
    assert s.hint is None
    s = s.observe("it", 0.9, 3.0, "set")
    assert s.confident and not hold_for_more_audio(s, 0.8, turn_ended=False)
    assert s.hint == "it"  # what the session's jobs carry as language_hint
    weak = SessionLanguage().observe("ja", 0.3, 4.0, "all")
    assert not weak.confident


def test_weak_evidence_does_not_replace_confident_evidence_but_a_confident_switch_does() -> None:
    s = SessionLanguage().observe("it", 0.9, 3.0, "set")
    assert s.observe("es", 0.5, 1.0, "set") == s
    switched = s.observe("de", 0.92, 2.5, "set")
    assert switched.language == "de" and switched.confident


def test_without_confidence_the_better_supported_guess_is_kept() -> None:
    s = SessionLanguage().observe("la", 0.4, 0.8, "all").observe("it", 0.6, 1.9, "set")
    assert s.language == "it"
    assert s.observe("ja", 0.5, 0.5, "all").language == "it"
    assert s.observe(None, None, 3.0, None) == s


def test_a_pinned_language_is_confident_at_once() -> None:
    s = SessionLanguage().observe("it", 1.0, 0.5, "hint")
    assert s.pinned and s.confident and not hold_for_more_audio(s, 0.5, turn_ended=False)


def test_a_confident_detection_carries_over_and_a_doubtful_one_does_not_flip_it() -> None:
    """Issue 14's stickiness (it was gateway.language_memory), now with the speech behind it."""
    s = SessionLanguage().observe("it", 0.4, 3.0, "set")  # doubtful first: nothing to carry yet
    assert s.hint is None
    s = s.observe("it", 0.93, 3.0, "set")
    assert s.hint == "it"
    s = s.observe("th", 0.31, 1.2, "all")  # the short, unsure utterance
    assert s.hint == "it"
    s = s.observe("es", 0.9, 2.5, "set")  # the speaker switched, and the model is sure
    assert s.hint == "es"
    assert SessionLanguage.for_source(None) == SessionLanguage()  # a new source language: start over


def test_a_client_pinned_language_is_the_hint_from_the_start() -> None:
    s = SessionLanguage.for_source("it")
    assert s.pinned and s.hint == "it" and not hold_for_more_audio(s, 0.3, turn_ended=False)


def test_an_english_only_models_answer_is_decisive_on_any_length() -> None:
    """tiny.en does not detect: the worker answers en, 1.0, scope hint, for a 0.4 s partial too."""
    s = SessionLanguage().observe("en", 1.0, 0.4, "hint")
    assert s.confident and s.hint == "en" and not hold_for_more_audio(s, 0.4, turn_ended=False)
    # The same probability from a real detection still needs the speech behind it.
    assert not SessionLanguage().observe("en", 1.0, 0.4, "set").confident
