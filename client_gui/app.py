"""Entry point: ``python -m client_gui`` (the window) and the headless smoke mode.

Smoke mode (``--audio-file``) streams a WAV file into a running stack in the chosen mode,
shows the results and, with ``--exit-after-final``, saves ``--screenshot`` and exits once the
gateway has sent every result (``done``). The exit code is 0 when at least one final came.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QGuiApplication, QPixmap
from PyQt5.QtWidgets import QApplication

from client_gui.audio_sources import PortAudioUnavailable, list_input_devices
from client_gui.controller import Controller, Mode
from client_gui.languages import validate_source, validate_target
from client_gui.main_window import MainWindow
from client_gui.overlay import SubtitleOverlay

log = logging.getLogger(__name__)

DEFAULT_URL = "ws://127.0.0.1:5026/"
# Time for the last result to be painted before the screenshot.
SCREENSHOT_DELAY_MS = 700


@dataclass(frozen=True)
class AppOptions:
    url: str = DEFAULT_URL
    token: str | None = None
    source_language: str = "auto"
    target_language: str | None = None
    audio_file: Path | None = None
    mode: str = "subtitles"
    exit_after_final: bool = False
    screenshot: Path | None = None
    timeout: float = 300.0
    keystrokes: bool = False
    speed: float = 1.0
    list_devices: bool = False

    def __repr__(self) -> str:
        return f"AppOptions(url={self.url!r}, mode={self.mode!r}, token={'***' if self.token else None})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client_gui",
        description="Desktop client: live subtitles and voice typing over the speech gateway.",
    )
    parser.add_argument("--url", default=os.environ.get("SPEECH_GATEWAY_URL", DEFAULT_URL),
                        help="gateway WebSocket URL (env SPEECH_GATEWAY_URL)")
    parser.add_argument("--token", default=os.environ.get("SPEECH_CLIENT_TOKEN"),
                        help="JWT sent as 'Authorization: Bearer' (env SPEECH_CLIENT_TOKEN)")
    parser.add_argument("--source-language", default="auto", type=validate_source)
    parser.add_argument("--target-language", default=None, type=validate_target,
                        help="ISO 639-1 code, or none (default) for no translation")
    parser.add_argument("--audio-file", type=Path, help="stream this 16-bit PCM WAV file (smoke mode)")
    parser.add_argument("--mode", choices=["subtitles", "typing"], default="subtitles")
    parser.add_argument("--exit-after-final", action="store_true",
                        help="exit once every result of the file has arrived")
    parser.add_argument("--screenshot", type=Path, help="save a PNG here before exiting")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="smoke mode: give up after this many seconds (exit code 2)")
    parser.add_argument("--keystrokes", action="store_true",
                        help="smoke mode: really send keystrokes in typing mode")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="file playback speed (1 = real time, 0 = as fast as possible)")
    parser.add_argument("--list-devices", action="store_true",
                        help="print the audio sources (microphones, system audio) and exit")
    return parser


def parse_args(argv: list[str] | None = None) -> AppOptions:
    ns = build_parser().parse_args(argv)
    return AppOptions(
        url=ns.url,
        token=ns.token or None,
        source_language=ns.source_language,
        target_language=ns.target_language,
        audio_file=ns.audio_file,
        mode=ns.mode,
        exit_after_final=ns.exit_after_final,
        screenshot=ns.screenshot,
        timeout=ns.timeout,
        keystrokes=ns.keystrokes,
        speed=ns.speed,
        list_devices=ns.list_devices,
    )


def grab(controller: Controller) -> QPixmap:
    """The whole screen on a real display (overlay over the desktop), else the active widget."""
    screen = QGuiApplication.primaryScreen()
    if QGuiApplication.platformName() == "xcb" and screen is not None:
        return screen.grabWindow(0)  # type: ignore[arg-type]  # 0 = the root window
    if controller.mode == Mode.SUBTITLES and controller.overlay.isVisible():
        return controller.overlay.grab()
    return controller.window.grab()


def save_screenshot(controller: Controller, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = grab(controller).save(str(path), "PNG")
    if ok:
        log.info("screenshot saved to %s", path)
    else:
        log.error("could not save the screenshot to %s", path)
    return ok


def run_smoke(app: QApplication, controller: Controller, options: AppOptions) -> int:
    """Stream the file in the chosen mode; exit when done (if asked), with a screenshot."""
    assert options.audio_file is not None
    window = controller.window
    window.use_file(options.audio_file)
    window.keystrokes_check.setChecked(options.keystrokes)
    if options.keystrokes:
        # The keystrokes are for the application that has the focus: do not take it.
        window.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    window.show()
    controller.hold_on_end = True
    mode = Mode.TYPING if options.mode == "typing" else Mode.SUBTITLES
    result = {"code": 1, "finished": 0}

    def finish(code: int) -> None:
        if result["finished"]:
            return  # done, then the end of the session: one exit
        result["finished"] = 1
        if options.screenshot is not None:
            save_screenshot(controller, options.screenshot)
        result["code"] = code
        app.exit(code)

    def on_done() -> None:
        if options.exit_after_final:
            QTimer.singleShot(SCREENSHOT_DELAY_MS, lambda: finish(0 if controller.finals else 1))

    def on_ended() -> None:
        # Ended without ``done`` (refused, dropped for good): still leave evidence and exit.
        if options.exit_after_final:
            QTimer.singleShot(SCREENSHOT_DELAY_MS, lambda: finish(0 if controller.finals else 1))

    controller.done_received.connect(on_done)
    controller.session_ended.connect(on_ended)
    QTimer.singleShot(int(options.timeout * 1000), lambda: finish(2))
    QTimer.singleShot(0, lambda: controller.start(mode))
    app.exec_()
    for final in controller.finals:
        print(f"final: {final.text.strip()}")
    for translation in controller.translations:
        print(f"translation [{translation.target_language}]: {translation.text.strip()}")
    return result["code"]


def print_devices() -> int:
    try:
        devices = list_input_devices()
    except PortAudioUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    for device in devices:
        print(f"{device.index:3d}  {device.label}")
    if not devices:
        print("no audio input devices found (a WAV file source still works)")
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.list_devices:
        return print_devices()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    window = MainWindow(url=options.url, token=options.token)
    window.set_languages(options.source_language, options.target_language)
    overlay = SubtitleOverlay()
    controller = Controller(window, overlay, file_speed=options.speed)
    try:
        if options.audio_file is not None:
            return run_smoke(app, controller, options)
        window.show()
        return app.exec_()
    finally:
        controller.shutdown()
