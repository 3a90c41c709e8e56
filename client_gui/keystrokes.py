"""Sending voice-typing keystrokes to whatever application has the keyboard focus.

:func:`plan_actions` (pure) turns :class:`~client_gui.typing_diff.Keystrokes` into actions:
backspaces, ASCII typed key by key, and non-ASCII text pasted through the clipboard (key
synthesis of arbitrary Unicode is unreliable across layouts and toolkits). Backends: pynput
first, then the ``xdotool`` command. :class:`Typist` runs the actions on its own thread so the
GUI thread never waits for a keyboard, and restores the previous clipboard after each paste.
"""

from __future__ import annotations

import logging
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from client_gui.typing_diff import Keystrokes

log = logging.getLogger(__name__)

# Time the target application gets to read the clipboard after Ctrl+V (X11 pastes are
# asynchronous: the target asks the owner for the data later), and extra time before the
# user's clipboard comes back.
CLIPBOARD_PASTE_DELAY_S = 0.2
CLIPBOARD_RESTORE_DELAY_S = 0.3
# Time for the target to learn that the clipboard changed owner: Qt and GTK cache the last
# content they read, and a Ctrl+V that arrives first pastes the previous text.
CLIPBOARD_SETTLE_S = 0.1


@dataclass(frozen=True)
class Backspace:
    count: int


@dataclass(frozen=True)
class TypeText:
    """ASCII text typed key by key."""

    text: str


@dataclass(frozen=True)
class PasteText:
    """Text put on the clipboard and pasted with Ctrl+V."""

    text: str


Action = Backspace | TypeText | PasteText


def _typable(char: str) -> bool:
    return char.isascii() and (char.isprintable() or char == "\n")


def plan_actions(keys: Keystrokes) -> list[Action]:
    """Backspaces first, then runs of typable ASCII and pasted non-ASCII, in text order."""
    actions: list[Action] = []
    if keys.backspaces:
        actions.append(Backspace(keys.backspaces))
    run = ""
    run_typable = True
    for char in keys.text:
        typable = _typable(char)
        if run and typable != run_typable:
            actions.append(TypeText(run) if run_typable else PasteText(run))
            run = ""
        run += char
        run_typable = typable
    if run:
        actions.append(TypeText(run) if run_typable else PasteText(run))
    return actions


class KeystrokesUnavailable(RuntimeError):
    """No way to send keystrokes on this system (no X display, no xdotool, ...)."""


class KeyBackend(Protocol):
    name: str

    def backspace(self, count: int) -> None: ...

    def type_ascii(self, text: str) -> None: ...

    def paste_shortcut(self) -> None: ...


class PynputBackend:
    """Keystrokes through pynput (X11 via XTest, Windows, macOS)."""

    name = "pynput"

    def __init__(self) -> None:
        try:
            # pynput connects to the display at import time, so import it only here.
            from pynput import keyboard
        except Exception as exc:  # pynput raises ImportError or Xlib errors without a display
            raise KeystrokesUnavailable(f"pynput cannot send keystrokes: {exc}") from exc
        self._keyboard = keyboard
        self._controller = keyboard.Controller()

    def backspace(self, count: int) -> None:
        for _ in range(count):
            self._controller.tap(self._keyboard.Key.backspace)

    def type_ascii(self, text: str) -> None:
        self._controller.type(text)

    def paste_shortcut(self) -> None:
        modifier = self._keyboard.Key.cmd if sys.platform == "darwin" else self._keyboard.Key.ctrl
        with self._controller.pressed(modifier):
            self._controller.tap("v")


class XdotoolBackend:
    """Keystrokes through the ``xdotool`` command (X11)."""

    name = "xdotool"

    def __init__(self, executable: str | None = None) -> None:
        found = executable or shutil.which("xdotool")
        if not found:
            raise KeystrokesUnavailable("xdotool is not installed (apt-get install xdotool)")
        self._exe = found

    def _run(self, *args: str) -> None:
        subprocess.run([self._exe, *args], check=True, timeout=30, capture_output=True)

    def backspace(self, count: int) -> None:
        if count > 0:
            self._run("key", "--clearmodifiers", "--repeat", str(count), "BackSpace")

    def type_ascii(self, text: str) -> None:
        self._run("type", "--clearmodifiers", "--", text)

    def paste_shortcut(self) -> None:
        self._run("key", "--clearmodifiers", "ctrl+v")


def select_backend(preferred: str = "auto") -> KeyBackend:
    """``pynput``, ``xdotool`` or ``auto`` (pynput, falling back to xdotool)."""
    order = ["pynput", "xdotool"] if preferred == "auto" else [preferred]
    reasons: list[str] = []
    for name in order:
        try:
            if name == "pynput":
                return PynputBackend()
            if name == "xdotool":
                return XdotoolBackend()
            reasons.append(f"unknown backend {name!r}")
        except KeystrokesUnavailable as exc:
            reasons.append(str(exc))
    raise KeystrokesUnavailable("; ".join(reasons))


class Clipboard(Protocol):
    def copy(self, text: str) -> None: ...

    def paste(self) -> str: ...


class PyperclipClipboard:
    """The system clipboard through pyperclip (xclip/xsel on X11, wl-clipboard on Wayland)."""

    def copy(self, text: str) -> None:
        import pyperclip

        pyperclip.copy(text)

    def paste(self) -> str:
        import pyperclip

        return str(pyperclip.paste())


def run_actions(
    actions: list[Action],
    backend: KeyBackend,
    clipboard: Clipboard,
    restore_delay: float = CLIPBOARD_RESTORE_DELAY_S,
    settle_delay: float = CLIPBOARD_SETTLE_S,
    paste_delay: float = CLIPBOARD_PASTE_DELAY_S,
) -> None:
    """Perform the actions; the clipboard is saved before the first paste, restored after."""
    saved: str | None = None
    pasted = False
    try:
        for action in actions:
            if isinstance(action, Backspace):
                backend.backspace(action.count)
            elif isinstance(action, TypeText):
                backend.type_ascii(action.text)
            else:
                if not pasted:
                    saved = clipboard.paste()
                    pasted = True
                clipboard.copy(action.text)
                time.sleep(settle_delay)
                backend.paste_shortcut()
                time.sleep(paste_delay)
    finally:
        if pasted and saved is not None:
            time.sleep(restore_delay)
            clipboard.copy(saved)


class Typist:
    """Types keystrokes on a background thread, in order.

    The backend is chosen on that thread at the first keystroke, so a missing display only
    shows as an error through ``on_error`` and never blocks or crashes the GUI.
    """

    def __init__(
        self,
        backend_factory: Callable[[], KeyBackend] = select_backend,
        clipboard: Clipboard | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._backend_factory = backend_factory
        self._clipboard = clipboard or PyperclipClipboard()
        self._on_error = on_error or (lambda message: None)
        self._queue: queue.Queue[Keystrokes | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._backend: KeyBackend | None = None
        self._failed = False

    def submit(self, keys: Keystrokes) -> None:
        if keys.empty:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="typist", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(keys)
        except queue.Full:
            self._on_error("typing is falling behind; keystrokes dropped")

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while True:
            keys = self._queue.get()
            if keys is None:
                return
            self._type(keys)

    def _type(self, keys: Keystrokes) -> None:
        if self._failed:
            return
        try:
            if self._backend is None:
                self._backend = self._backend_factory()
                log.info("voice typing through %s", self._backend.name)
            run_actions(plan_actions(keys), self._backend, self._clipboard)
        except KeystrokesUnavailable as exc:
            self._failed = True  # say it once, not at every partial
            self._on_error(f"Voice typing cannot send keystrokes: {exc}")
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            log.exception("typing failed")
            self._on_error(f"Voice typing failed: {exc}")

