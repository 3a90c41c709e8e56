"""Partial translations: the stable prefix, its growth rule and the per-session rate limit."""

from __future__ import annotations

from translation_worker.partials import PartialOptions, PartialTranslationGate, stable_prefix


def test_stable_prefix_is_what_all_versions_agree_on() -> None:
    assert stable_prefix([["a", "b", "c"], ["a", "b", "x"]]) == ["a", "b"]
    assert stable_prefix([["a"], ["b"]]) == []
    assert stable_prefix([]) == []


def test_offers_the_agreed_prefix_once_it_grows() -> None:
    gate = PartialTranslationGate(PartialOptions(min_interval_seconds=1.0, min_new_words=2))
    assert gate.offer("s", "seg1", "hello there my", now=0.0) is None  # one version: nothing agreed yet
    assert gate.offer("s", "seg1", "hello there my friend", now=0.5) == "hello there my"
    # Grew by one word only: not worth a translation.
    assert gate.offer("s", "seg1", "hello there my friend how", now=2.0) is None
    assert (
        gate.offer("s", "seg1", "hello there my friend how are you", now=3.0) == "hello there my friend how"
    )


def test_rate_limited_per_session() -> None:
    gate = PartialTranslationGate(PartialOptions(min_interval_seconds=5.0, min_new_words=1))
    gate.offer("s", "seg1", "one two", now=0.0)
    assert gate.offer("s", "seg1", "one two three", now=0.1) == "one two"
    gate.offer("s", "seg2", "four five", now=1.0)
    assert gate.offer("s", "seg2", "four five six", now=2.0) is None  # too soon after the last one
    assert gate.offer("s", "seg2", "four five six seven", now=6.0) == "four five six"
    # Another session has its own budget.
    gate.offer("t", "x", "a b", now=2.0)
    assert gate.offer("t", "x", "a b c", now=2.1) == "a b"


def test_a_new_segment_and_finish_reset_the_utterance() -> None:
    gate = PartialTranslationGate(PartialOptions(min_interval_seconds=0.0, min_new_words=1))
    gate.offer("s", "seg1", "alpha beta", now=0.0)
    gate.finish("s", "seg1")
    assert gate.offer("s", "seg1", "alpha beta gamma", now=1.0) is None  # history gone after the final
    gate.forget("s")
    gate.offer("s", "seg2", "x y", now=2.0)
    assert gate.offer("s", "seg2", "x y z", now=2.0) == "x y"


def test_sessions_are_bounded() -> None:
    gate = PartialTranslationGate(PartialOptions(max_sessions=2, min_interval_seconds=0.0, min_new_words=1))
    for session in ("a", "b", "c"):
        gate.offer(session, "seg", "w1 w2", now=0.0)
    assert len(gate._sessions) == 2
    # "a" was evicted, so it starts over and needs two versions again.
    assert gate.offer("a", "seg", "w1 w2 w3", now=1.0) is None
