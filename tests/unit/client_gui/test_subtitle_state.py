"""The overlay's one-sentence-at-a-time rules."""

from __future__ import annotations

from client_gui.subtitle_state import SubtitleState, SubtitleView
from speech_client.protocol import Done
from tests.speech_messages import final, realtime, translation


def test_partial_then_final_then_translation() -> None:
    state = SubtitleState()
    state.apply(realtime(1, "Hello wor"))
    assert state.view == SubtitleView("Hello wor", "", False)
    state.apply(realtime(1, "Hello world"))
    state.apply(final(1, " Hello world."))
    assert state.view == SubtitleView("Hello world.", "", True)
    state.apply(translation(1, "Hola mundo."))
    assert state.view == SubtitleView("Hello world.", "Hola mundo.", True)


def test_next_sentence_replaces_the_previous_one() -> None:
    state = SubtitleState()
    state.apply(final(1, "First."))
    state.apply(translation(1, "Primero."))
    state.apply(realtime(2, "Sec"))
    assert state.view == SubtitleView("Sec", "", False)


def test_late_results_of_a_replaced_sentence_are_ignored() -> None:
    state = SubtitleState()
    state.apply(final(1, "First."))
    state.apply(realtime(2, "Second"))
    assert not state.apply(translation(1, "Primero."))
    assert not state.apply(realtime(1, "Fir"))
    assert state.view.text == "Second"


def test_late_partial_does_not_overwrite_the_final() -> None:
    state = SubtitleState()
    state.apply(final(1, "Done."))
    assert not state.apply(realtime(1, "Do"))
    assert state.view.text == "Done."


def test_non_results_change_nothing() -> None:
    state = SubtitleState()
    assert not state.apply(Done())
    state.apply(realtime(1, "x"))
    state.clear()
    assert state.view == SubtitleView()
