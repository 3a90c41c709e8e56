"""What the buttons do: start/stop a streaming session, switch modes, route results.

One streaming session serves both modes: switching between voice typing and subtitles only
changes where results go, and a language change is a ``config`` message on the same socket.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtWidgets import QApplication, QFileDialog

from client_gui.audio_sources import AudioSource, DeviceInfo, DeviceSource, WavFileSource
from client_gui.keystrokes import Typist
from client_gui.main_window import MainWindow
from client_gui.overlay import SubtitleOverlay
from client_gui.stream_client import ClientOptions
from client_gui.transcript_export import FILTERS, TRANSLATION_FILTERS, export_transcript, format_for
from client_gui.typing_diff import Keystrokes, TypingBuffer, compose
from client_gui.worker import StreamWorker
from speech_client.protocol import Done, Final, Realtime, ServerMessage, Translation

log = logging.getLogger(__name__)


class Mode(enum.Enum):
    IDLE = "idle"
    TYPING = "typing"
    SUBTITLES = "subtitles"


WorkerFactory = Callable[[ClientOptions, Callable[[], AudioSource]], StreamWorker]


class Controller(QObject):
    mode_changed = pyqtSignal(str)
    done_received = pyqtSignal()  # the gateway sent every result of the session
    session_ended = pyqtSignal()  # the worker has stopped, for whatever reason

    def __init__(
        self,
        window: MainWindow,
        overlay: SubtitleOverlay,
        typist: Typist | None = None,
        worker_factory: WorkerFactory = StreamWorker,
        file_speed: float = 1.0,
        own_window_active: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.window = window
        self.overlay = overlay
        self.typist = typist or Typist(on_error=self._typist_error_from_thread)
        self._worker_factory = worker_factory
        self._file_speed = file_speed
        self.mode = Mode.IDLE
        # Keep the overlay/mode when a session ends by itself (smoke mode screenshots it).
        self.hold_on_end = False
        self.worker: StreamWorker | None = None
        # Every worker still running, including stopped ones finishing their last results:
        # a QThread must outlive its thread.
        self._workers: set[StreamWorker] = set()
        self.typing = TypingBuffer()
        # Keystrokes held back while this application has the focus: typed into our own
        # window they would press our buttons. Sent when another application is focused.
        self._held = Keystrokes()
        self._own_window_active = own_window_active or (lambda: QApplication.activeWindow() is not None)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.applicationStateChanged.connect(self._application_state_changed)
        self.finals: list[Final] = []
        self._done = False  # the current session's ``done`` has arrived
        self.translations: list[Translation] = []
        self._typist_error.connect(self.window.show_error)
        window.typing_button.clicked.connect(lambda: self.toggle(Mode.TYPING))
        window.subtitle_button.clicked.connect(lambda: self.toggle(Mode.SUBTITLES))
        window.source_language_combo.currentIndexChanged.connect(self._languages_changed)
        window.save_button.clicked.connect(self._ask_where_to_save)
        window.target_language_combo.currentIndexChanged.connect(self._languages_changed)

    # Typist errors come from its thread; a signal hops them onto the GUI thread.
    _typist_error = pyqtSignal(str)

    def _typist_error_from_thread(self, text: str) -> None:
        self._typist_error.emit(text)

    # --- modes ---------------------------------------------------------------------
    def toggle(self, mode: Mode) -> None:
        """A mode button: start that mode, switch to it, or stop it if it is active."""
        if self.mode == mode:
            self.stop()
        elif self.mode == Mode.IDLE:
            self.start(mode)
        else:
            self._set_mode(mode)

    def start(self, mode: Mode) -> None:
        if self.worker is not None:
            self._set_mode(mode)
            return
        choice = self.window.selected_source()
        if choice is None:
            self.window.show_error("Choose an audio source first (a device or a WAV file).")
            self.window.set_mode_buttons(self.mode.value)
            return
        self.window.clear_error()
        for old in self._workers:
            with contextlib.suppress(TypeError):  # TypeError: already disconnected
                old.state_changed.disconnect()  # a finishing session must not overwrite the state
        options = ClientOptions(
            url=self.window.url_edit.text().strip(),
            token=self.window.token_edit.text().strip() or None,
            source_language=self.window.source_language(),
            target_language=self.window.target_language(),
        )
        _, value = choice
        speed = self._file_speed

        def open_source() -> AudioSource:
            if isinstance(value, DeviceInfo):
                return DeviceSource(value.index, pulse_source=value.pulse_source)
            return WavFileSource(Path(str(value)), speed=speed)

        self._done = False
        worker = self._worker_factory(options, open_source)
        worker.message_received.connect(self.handle_message)
        worker.state_changed.connect(self.window.set_state)
        worker.error.connect(self.window.show_error)
        worker.finished.connect(lambda: self._on_worker_finished(worker))
        self.worker = worker
        self._workers.add(worker)
        log.info("starting %s mode against %s", mode.value, options.url)
        worker.start()
        self._set_mode(mode)

    def stop(self) -> None:
        """Stop capturing; the worker finishes pending results and ends by itself."""
        if self.worker is not None:
            self.worker.request_stop()
            self.worker = None
        self._set_mode(Mode.IDLE)

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """On exit: stop, wait a little for the worker, stop the typist."""
        self.stop()
        for worker in list(self._workers):
            worker.request_stop()
            if not worker.wait(timeout_ms):
                worker.abort()  # a QThread must not be destroyed while it runs
                worker.wait(timeout_ms)
        self.typist.close()
        self.overlay.hide()

    def _set_mode(self, mode: Mode) -> None:
        previous = self.mode
        self.mode = mode
        if previous == Mode.TYPING and mode != Mode.TYPING:
            self.typing.reset()  # text already typed stays; a new typing session starts clean
            self._held = Keystrokes()
        if mode == Mode.SUBTITLES:
            self.overlay.clear()
            self.overlay.show()
            self.overlay.raise_()
        else:
            self.overlay.hide()
        self.window.set_mode_buttons(mode.value)
        if mode != previous:
            self.mode_changed.emit(mode.value)

    def _languages_changed(self) -> None:
        if self.worker is not None:
            self.worker.send_config(
                source_language=self.window.source_language(),
                target_language=self.window.target_language(),
            )

    # --- results -------------------------------------------------------------------
    def handle_message(self, message: ServerMessage) -> None:
        """A result from the gateway (the worker's signal): transcript, overlay or typing."""
        if isinstance(message, Final):
            self.finals.append(message)
            language = f"[{message.language}] " if message.language else ""
            self.window.append_transcript(f"{language}{message.text.strip()}")
            if message.language and message.text.strip():
                self.window.show_detected_language(message.language, message.language_probability)
        elif isinstance(message, Translation):
            self.translations.append(message)
            self.window.append_transcript(f"    → [{message.target_language}] {message.text.strip()}")
        elif isinstance(message, Done):
            self._done = True
            self.done_received.emit()
        if self.mode == Mode.SUBTITLES:
            self.overlay.apply(message)
        elif self.mode == Mode.TYPING and isinstance(message, Realtime | Final):
            keys = self.typing.update(
                message.segment_id, message.text, final=isinstance(message, Final)
            )
            self.window.typed_view.setPlainText(self.typing.text)
            if self.window.keystrokes_check.isChecked():
                self._send_keys(keys)

    # --- saving -------------------------------------------------------------------
    def save_transcript(self, path: str | Path, *, translated: bool = False) -> Path:
        """Write the session's finals (or translations) to ``path``; the suffix picks the format."""
        target = Path(path)
        text = export_transcript(self.finals, self.translations, format_for(target), translated=translated)
        target.write_text(text, encoding="utf-8")
        return target

    def _ask_where_to_save(self) -> None:
        filters = dict(FILTERS)
        if self.translations:
            filters.update(TRANSLATION_FILTERS)
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Save transcript", "transcript.srt", ";;".join(filters)
        )
        if not path:
            return
        fmt, translated = filters.get(chosen, (format_for(path), False))
        if not Path(path).suffix:
            path = f"{path}.{fmt}"
        try:
            self.save_transcript(path, translated=translated)
        except OSError as exc:
            self.window.show_error(f"Cannot save the transcript: {exc}")

    def _send_keys(self, keys: Keystrokes) -> None:
        if self._own_window_active():
            if self._held.empty and not keys.empty:
                self.window.show_error(
                    "Voice typing waits while this window has the focus: "
                    "click into the application to type into."
                )
            self._held = compose(self._held, keys)
            return
        self.typist.submit(compose(self._held, keys))
        self._held = Keystrokes()

    def flush_held_keys(self) -> None:
        """Type what was held back (another application has the focus now)."""
        if not self._held.empty and self.mode == Mode.TYPING and not self._own_window_active():
            self.typist.submit(self._held)
            self._held = Keystrokes()
            self.window.clear_error()

    def _application_state_changed(self, state: int) -> None:
        if state != Qt.ApplicationState.ApplicationActive:
            self.flush_held_keys()

    def _on_worker_finished(self, worker: StreamWorker) -> None:
        self._workers.discard(worker)
        if worker is not self.worker:
            return  # an earlier session that was stopped has finished its last results
        self.worker = None
        if self._done:
            self.window.set_state("finished", "every result received")
        else:
            self.window.set_state("stopped", "")
        if self.mode != Mode.IDLE and not self.hold_on_end:
            self._set_mode(Mode.IDLE)
        self.session_ended.emit()
