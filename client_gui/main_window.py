"""The main window: audio source, languages, server, the two mode buttons, state and results.

A view only: it holds widgets and answers questions about them; :mod:`client_gui.controller`
decides what happens when they are used.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from client_gui.audio_sources import DeviceInfo, PortAudioUnavailable, list_input_devices
from client_gui.languages import AUTO, LANGUAGES, source_choices, target_choices

log = logging.getLogger(__name__)

FILE_ITEM_LABEL = "WAV file…"
# Item data of the source list: ("device", DeviceInfo) or ("file", path or None).
SourceChoice = tuple[str, object]

_STATE_STYLE = {
    "connecting": ("#b58900", "Connecting"),
    "connected": ("#2e8b57", "Connected"),
    "reconnecting": ("#cb4b16", "Reconnecting"),
    "stopping": ("#b58900", "Finishing"),
    "stopped": ("#777777", "Disconnected"),
    "finished": ("#2e8b57", "Finished"),
}


class MainWindow(QMainWindow):
    def __init__(self, url: str = "ws://127.0.0.1:5026/", token: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Speech Transcription & Translation")
        central = QWidget(self)
        self.setCentralWidget(central)
        root = QVBoxLayout(central)

        server = QGroupBox("Server", central)
        server_form = QFormLayout(server)
        self.url_edit = QLineEdit(url, server)
        self.token_edit = QLineEdit(token or "", server)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("optional JWT")
        server_form.addRow("Gateway URL", self.url_edit)
        server_form.addRow("Token", self.token_edit)
        root.addWidget(server)

        audio = QGroupBox("Audio and languages", central)
        audio_form = QFormLayout(audio)
        self.source_combo = QComboBox(audio)
        self.refresh_button = QPushButton("Refresh", audio)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source_combo, 1)
        source_row.addWidget(self.refresh_button)
        audio_form.addRow("Audio source", source_row)
        self.source_language_combo = QComboBox(audio)
        for code, label in source_choices():
            self.source_language_combo.addItem(label if code == "auto" else f"{label} ({code})", code)
        self.target_language_combo = QComboBox(audio)
        for target, label in target_choices():
            self.target_language_combo.addItem(label if target is None else f"{label} ({target})", target)
        audio_form.addRow("Spoken language", self.source_language_combo)
        # What detection answered last, and one click to stop detecting and keep it.
        self.detected_label = QLabel("—", audio)
        self.pin_button = QPushButton("Pin", audio)
        self.pin_button.setToolTip("Use the detected language from now on instead of auto-detect")
        self.pin_button.setEnabled(False)
        detected_row = QHBoxLayout()
        detected_row.addWidget(self.detected_label, 1)
        detected_row.addWidget(self.pin_button)
        audio_form.addRow("Detected language", detected_row)
        audio_form.addRow("Translate to", self.target_language_combo)
        self.detected_language: str | None = None
        self.pin_button.clicked.connect(self.pin_detected_language)
        self.source_language_combo.currentIndexChanged.connect(self._update_pin_button)
        root.addWidget(audio)

        buttons = QHBoxLayout()
        self.typing_button = QPushButton("Voice Typing", central)
        self.subtitle_button = QPushButton("Live Subtitle", central)
        for button in (self.typing_button, self.subtitle_button):
            button.setCheckable(True)
            button.setMinimumHeight(40)
            buttons.addWidget(button)
        root.addLayout(buttons)
        self.keystrokes_check = QCheckBox("Type into the focused application", central)
        self.keystrokes_check.setChecked(True)
        root.addWidget(self.keystrokes_check)

        self.state_label = QLabel(central)
        self.error_label = QLabel(central)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.state_label)
        root.addWidget(self.error_label)

        transcript_row = QHBoxLayout()
        transcript_row.addWidget(QLabel("Transcript", central), 1)
        self.save_button = QPushButton("Save transcript…", central)
        self.save_button.setToolTip("Save the finals (or their translations) as text, SRT or WebVTT")
        transcript_row.addWidget(self.save_button)
        root.addLayout(transcript_row)
        self.transcript_view = QPlainTextEdit(central)
        self.transcript_view.setReadOnly(True)
        self.transcript_view.setMaximumBlockCount(500)
        root.addWidget(self.transcript_view, 2)
        root.addWidget(QLabel("Typed text", central))
        self.typed_view = QPlainTextEdit(central)
        self.typed_view.setReadOnly(True)
        self.typed_view.setMaximumHeight(90)
        root.addWidget(self.typed_view, 1)

        self.set_state("stopped", "")
        self.resize(560, 640)
        self.refresh_button.clicked.connect(self.refresh_sources)
        self.source_combo.activated.connect(self._on_source_activated)
        self.refresh_sources()

    # --- audio sources -------------------------------------------------------------
    def refresh_sources(self) -> None:
        """List input devices, then the file entry; a missing PortAudio is said once."""
        self.source_combo.clear()
        try:
            devices: list[DeviceInfo] = list_input_devices()
        except PortAudioUnavailable as exc:
            devices = []
            self.show_error(str(exc))
        except OSError as exc:  # PortAudio present but its host API failed
            log.warning("cannot list audio devices: %s", exc)
            devices = []
            self.show_error(f"Cannot list audio devices: {exc}")
        for device in devices:
            self.source_combo.addItem(device.label, ("device", device))
        self.source_combo.addItem(FILE_ITEM_LABEL, ("file", None))

    def use_file(self, path: str | Path) -> None:
        """Select a WAV file as the audio source (also used by the headless smoke mode)."""
        path = Path(path)
        label = f"WAV file: {path.name}"
        self.source_combo.addItem(label, ("file", str(path)))
        self.source_combo.setCurrentIndex(self.source_combo.count() - 1)

    def _on_source_activated(self, index: int) -> None:
        kind, value = self.source_combo.itemData(index)
        if kind == "file" and value is None:
            path, _ = QFileDialog.getOpenFileName(self, "Audio file", "", "WAV files (*.wav)")
            if path:
                self.use_file(path)

    def selected_source(self) -> SourceChoice | None:
        data = self.source_combo.currentData()
        if not data or (data[0] == "file" and data[1] is None):
            return None
        return (str(data[0]), data[1])

    # --- languages -----------------------------------------------------------------
    def source_language(self) -> str:
        return str(self.source_language_combo.currentData())

    def target_language(self) -> str | None:
        data = self.target_language_combo.currentData()
        return None if data is None else str(data)

    def show_detected_language(self, code: str, probability: float | None) -> None:
        """Show a final's language; the pin button offers it while the source is auto."""
        name = LANGUAGES.get(code, code)
        sure = f" · {probability:.0%}" if probability is not None else ""
        self.detected_label.setText(f"{name} ({code}){sure}")
        self.detected_language = code
        self._update_pin_button()

    def pin_detected_language(self) -> None:
        """Select the detected language as the spoken one (the controller sends the config)."""
        if self.detected_language is not None:
            index = self.source_language_combo.findData(self.detected_language)
            if index >= 0:
                self.source_language_combo.setCurrentIndex(index)

    def _update_pin_button(self) -> None:
        code = self.detected_language
        self.pin_button.setEnabled(
            code is not None
            and self.source_language() == AUTO
            and self.source_language_combo.findData(code) >= 0
        )

    def set_languages(self, source: str, target: str | None) -> None:
        self.source_language_combo.setCurrentIndex(self.source_language_combo.findData(source))
        index = 0 if target is None else self.target_language_combo.findData(target)
        self.target_language_combo.setCurrentIndex(index)

    # --- state and results ---------------------------------------------------------
    def set_state(self, state: str, detail: str) -> None:
        color, text = _STATE_STYLE.get(state, ("#777777", state))
        suffix = f" · {detail}" if detail else ""
        self.state_label.setText(f"<span style='color:{color}'>●</span> {text}{suffix}")
        self.state_label.setProperty("connection_state", state)

    def show_error(self, text: str) -> None:
        self.error_label.setText(f"{time.strftime('%H:%M:%S')} {text}")

    def clear_error(self) -> None:
        self.error_label.clear()

    def set_mode_buttons(self, mode: str) -> None:
        self.typing_button.setChecked(mode == "typing")
        self.subtitle_button.setChecked(mode == "subtitles")
        running = mode != "idle"
        # Server and device are fixed for a running session; languages are not.
        for widget in (self.url_edit, self.token_edit, self.source_combo, self.refresh_button):
            widget.setEnabled(not running)

    def append_transcript(self, line: str) -> None:
        self.transcript_view.appendPlainText(line)
