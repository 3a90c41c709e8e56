"""The Qt client under QT_QPA_PLATFORM=offscreen (pytest-qt): widgets, modes, config, overlay.

The gateway is a real WebSocket server on 127.0.0.1 that records what it gets; the client is
the real one (QThread + asyncio + websockets) streaming a WAV file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLineEdit

from client_gui.app import main
from client_gui.controller import Controller, Mode
from client_gui.keystrokes import Typist
from client_gui.main_window import MainWindow
from client_gui.overlay import SubtitleOverlay
from tests.speech_messages import final, realtime, translation


class RecordingKeyboard:
    """The OS keyboard boundary: records what voice typing would press."""

    name = "recording"

    def __init__(self) -> None:
        self.typed = ""

    def backspace(self, count: int) -> None:
        self.typed = self.typed[:-count]

    def type_ascii(self, text: str) -> None:
        self.typed += text

    def paste_shortcut(self) -> None:
        raise AssertionError("no clipboard expected in this test")


@pytest.fixture
def keyboard() -> RecordingKeyboard:
    return RecordingKeyboard()


@pytest.fixture
def client(qtbot: Any, recording_gateway: Any, keyboard: RecordingKeyboard) -> Iterator[Controller]:
    window = MainWindow(url=recording_gateway.url)
    overlay = SubtitleOverlay()
    qtbot.addWidget(window)
    qtbot.addWidget(overlay)
    controller = Controller(window, overlay, typist=Typist(backend_factory=lambda: keyboard))
    yield controller
    controller.shutdown()


def connected(controller: Controller) -> bool:
    return controller.window.state_label.property("connection_state") == "connected"


def test_window_widgets(client: Controller) -> None:
    window = client.window
    assert window.source_language_combo.count() >= 16
    assert window.source_language_combo.itemData(0) == "auto"
    assert window.target_language_combo.count() >= 16
    assert window.target_language_combo.itemData(0) is None
    assert window.token_edit.echoMode() == QLineEdit.EchoMode.Password
    assert window.source_combo.itemText(window.source_combo.count() - 1) == "WAV file…"
    assert "Disconnected" in window.state_label.text()
    assert window.typing_button.isCheckable() and window.subtitle_button.isCheckable()
    window.set_languages("de", "ja")
    assert (window.source_language(), window.target_language()) == ("de", "ja")


def test_start_without_source_shows_an_error(client: Controller) -> None:
    window = client.window
    window.source_combo.setCurrentIndex(window.source_combo.count() - 1)  # "WAV file…", none chosen
    window.typing_button.click()
    assert client.mode is Mode.IDLE
    assert not window.typing_button.isChecked()
    assert "Choose an audio source" in window.error_label.text()


def test_mode_switching_keeps_one_connection(
    client: Controller, recording_gateway: Any, qtbot: Any, make_wav: Callable[..., Path]
) -> None:
    window = client.window
    window.use_file(make_wav(seconds=20.0))
    window.typing_button.click()
    assert client.mode is Mode.TYPING and window.typing_button.isChecked()
    qtbot.waitUntil(lambda: connected(client), timeout=10000)
    assert not window.url_edit.isEnabled()  # fixed while running

    window.subtitle_button.click()
    assert client.mode is Mode.SUBTITLES
    assert window.subtitle_button.isChecked() and not window.typing_button.isChecked()
    assert client.overlay.isVisible()

    window.typing_button.click()
    assert client.mode is Mode.TYPING and not client.overlay.isVisible()
    qtbot.waitUntil(lambda: recording_gateway.audio_bytes() > 0, timeout=10000)

    window.typing_button.click()  # the active button stops its mode
    assert client.mode is Mode.IDLE and not window.typing_button.isChecked()
    qtbot.waitUntil(lambda: client.worker is None and not client._workers, timeout=10000)
    assert len(recording_gateway.connections) == 1
    assert recording_gateway.connections[0][-1] == {"type": "end"}


def test_language_switch_sends_config_without_reconnecting(
    client: Controller, recording_gateway: Any, qtbot: Any, make_wav: Callable[..., Path]
) -> None:
    window = client.window
    window.use_file(make_wav(seconds=20.0))
    window.subtitle_button.click()
    qtbot.waitUntil(lambda: connected(client) and bool(recording_gateway.configs()), timeout=10000)
    assert recording_gateway.configs()[0]["source_language"] == "auto"

    window.source_language_combo.setCurrentIndex(window.source_language_combo.findData("fr"))
    window.target_language_combo.setCurrentIndex(window.target_language_combo.findData("en"))
    qtbot.waitUntil(lambda: len(recording_gateway.configs()) >= 3, timeout=10000)
    expected = {"type": "config", "source_language": "fr", "target_language": "en"}
    assert recording_gateway.configs()[-1] == expected
    assert len(recording_gateway.connections) == 1
    window.subtitle_button.click()


def test_overlay_shows_only_the_latest_sentence(qtbot: Any) -> None:
    overlay = SubtitleOverlay()
    qtbot.addWidget(overlay)
    overlay.show()
    overlay.apply(realtime(1, "The first"))
    overlay.apply(final(1, "The first sentence."))
    overlay.apply(translation(1, "La primera frase."))
    assert overlay.text_label.text() == "The first sentence."
    assert overlay.translation_label.text() == "La primera frase."
    overlay.apply(realtime(2, "And the"))
    assert overlay.text_label.text() == "And the"
    assert not overlay.translation_label.isVisibleTo(overlay)
    overlay.apply(translation(1, "late"))  # an old sentence never comes back
    assert overlay.text_label.text() == "And the"


def test_overlay_is_a_click_through_translucent_bottom_bar(qtbot: Any) -> None:
    overlay = SubtitleOverlay()
    qtbot.addWidget(overlay)
    overlay.show()
    overlay.apply(final(1, "Hello."))
    flags = overlay.windowFlags()
    for flag in (
        Qt.WindowType.FramelessWindowHint,
        Qt.WindowType.WindowStaysOnTopHint,
        Qt.WindowType.WindowTransparentForInput,
    ):
        assert flags & flag
    assert overlay.testAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
    assert overlay.screen() is not None
    screen = overlay.screen().availableGeometry()  # type: ignore[union-attr]
    geometry = overlay.frameGeometry()
    assert abs(geometry.center().x() - screen.center().x()) <= 1
    assert screen.bottom() - geometry.bottom() < screen.height() // 4


def test_typing_mode_types_the_changed_suffix(
    client: Controller, keyboard: RecordingKeyboard, qtbot: Any
) -> None:
    client._set_mode(Mode.TYPING)  # results routed as in a running typing session
    for message in (
        realtime(1, "Hello wor"),
        realtime(1, "Hello world"),
        final(1, "Hello world."),
        realtime(2, "How are"),
    ):
        client.handle_message(message)
    assert client.window.typed_view.toPlainText() == "Hello world. How are"
    qtbot.waitUntil(lambda: keyboard.typed == "Hello world. How are", timeout=5000)
    assert "Hello world." in client.window.transcript_view.toPlainText()


def test_headless_smoke_mode_saves_a_screenshot(
    recording_gateway: Any,
    make_wav: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    qapp: Any,
) -> None:
    shot = tmp_path / "shot.png"
    code = main([
        "--audio-file", str(make_wav(seconds=0.5)), "--mode", "subtitles", "--exit-after-final",
        "--screenshot", str(shot), "--url", recording_gateway.url, "--token", "T", "--target-language", "es",
        "--speed", "0", "--timeout", "30",
    ])
    assert code == 0
    assert shot.stat().st_size > 1000
    out = capsys.readouterr().out
    assert "final: Hello world." in out and "translation [es]: Hola mundo." in out
    assert recording_gateway.configs()[0]["target_language"] == "es"
    assert recording_gateway.headers[0]["authorization"] == "Bearer T"


def test_exit_does_not_wait_for_a_gateway_that_never_finishes(
    qtbot: Any, gateway_factory: Any, make_wav: Callable[..., Path]
) -> None:
    with gateway_factory(ignore_end=True) as gateway:
        window = MainWindow(url=gateway.url)
        overlay = SubtitleOverlay()
        qtbot.addWidget(window)
        qtbot.addWidget(overlay)
        controller = Controller(window, overlay)
        window.use_file(make_wav(seconds=0.3))
        window.subtitle_button.click()
        qtbot.waitUntil(
            lambda: bool(gateway.connections) and {"type": "end"} in gateway.connections[0], timeout=10000
        )
        workers = list(controller._workers)
        controller.shutdown(timeout_ms=300)  # the end is never answered: abort
        assert workers and all(worker.isFinished() for worker in workers)


def test_list_devices_prints_sources_or_says_there_are_none(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "Microphone:" in out or "System audio:" in out or "no audio input devices" in out


def test_typing_waits_while_this_window_has_the_focus(qtbot: Any, keyboard: RecordingKeyboard) -> None:
    window = MainWindow()
    overlay = SubtitleOverlay()
    qtbot.addWidget(window)
    qtbot.addWidget(overlay)
    focus = {"ours": True}
    controller = Controller(
        window, overlay, typist=Typist(backend_factory=lambda: keyboard), own_window_active=lambda: focus["ours"]
    )
    controller._set_mode(Mode.TYPING)
    controller.handle_message(realtime(1, "Hello wor"))
    controller.handle_message(final(1, "Hello world."))
    assert "click into the application" in window.error_label.text()
    focus["ours"] = False  # the user clicked into another application
    controller.flush_held_keys()
    controller.handle_message(realtime(2, "Bye"))
    qtbot.waitUntil(lambda: keyboard.typed == "Hello world. Bye", timeout=5000)
    assert window.error_label.text() == ""
    controller.shutdown()
