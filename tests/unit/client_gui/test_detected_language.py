"""The window shows the detected language of each final and pins it with one click."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client_gui.controller import Controller
from client_gui.keystrokes import Typist
from client_gui.main_window import MainWindow
from client_gui.overlay import SubtitleOverlay
from speech_client.protocol import Final


class NoKeyboard:
    name = "none"

    def backspace(self, count: int) -> None:
        raise AssertionError("no typing in this test")

    def type_ascii(self, text: str) -> None:
        raise AssertionError("no typing in this test")

    def paste_shortcut(self) -> None:
        raise AssertionError("no typing in this test")


@pytest.fixture
def controller(qtbot: Any, recording_gateway: Any) -> Iterator[Controller]:
    window = MainWindow(url=recording_gateway.url)
    overlay = SubtitleOverlay()
    qtbot.addWidget(window)
    qtbot.addWidget(overlay)
    c = Controller(window, overlay, typist=Typist(backend_factory=NoKeyboard))
    yield c
    c.shutdown()


def test_detected_language_is_shown_and_pinned_with_one_click(
    controller: Controller, recording_gateway: Any, qtbot: Any, make_wav: Callable[..., Path]
) -> None:
    window = controller.window
    assert not window.pin_button.isEnabled()  # nothing detected yet
    window.use_file(make_wav(seconds=20.0))
    window.subtitle_button.click()
    qtbot.waitUntil(lambda: bool(recording_gateway.configs()), timeout=10000)

    controller.handle_message(Final(segment_id="s:0", text="Buongiorno", language="it", language_probability=0.91,
                                    start=0.0, end=1.0))
    assert window.detected_label.text() == "Italian (it) · 91%"
    assert window.pin_button.isEnabled()

    window.pin_button.click()
    assert window.source_language() == "it"
    assert not window.pin_button.isEnabled()  # already pinned
    qtbot.waitUntil(lambda: recording_gateway.configs()[-1].get("source_language") == "it", timeout=10000)
    assert len(recording_gateway.connections) == 1  # same session, a config message
    window.subtitle_button.click()


def test_an_empty_final_or_an_unlisted_language_cannot_be_pinned(controller: Controller) -> None:
    window = controller.window
    controller.handle_message(Final(segment_id="s:0", text="", language="it", language_probability=0.3,
                                    start=0.0, end=1.0))
    assert window.detected_language is None
    window.show_detected_language("la", 0.4)  # Latin: not in the client's list
    assert "la" in window.detected_label.text() and not window.pin_button.isEnabled()
