"""Keystroke planning (pure) and running it with the clipboard saved and restored."""

from __future__ import annotations

import threading

from client_gui.keystrokes import (
    Backspace,
    KeystrokesUnavailable,
    PasteText,
    TypeText,
    Typist,
    XdotoolBackend,
    plan_actions,
    run_actions,
)
from client_gui.typing_diff import Keystrokes


class RecordingBackend:
    """Stands in for the OS keyboard (the boundary), recording what would be pressed."""

    name = "recording"

    def __init__(self, clipboard: FakeClipboard) -> None:
        self.clipboard = clipboard
        self.events: list[tuple[str, object]] = []

    def backspace(self, count: int) -> None:
        self.events.append(("backspace", count))

    def type_ascii(self, text: str) -> None:
        self.events.append(("type", text))

    def paste_shortcut(self) -> None:
        self.events.append(("paste", self.clipboard.content))


class FakeClipboard:
    def __init__(self, content: str) -> None:
        self.content = content

    def copy(self, text: str) -> None:
        self.content = text

    def paste(self) -> str:
        return self.content


def test_plan_ascii_only() -> None:
    assert plan_actions(Keystrokes(2, "ld, how")) == [Backspace(2), TypeText("ld, how")]


def test_plan_splits_non_ascii_runs_for_the_clipboard() -> None:
    actions = plan_actions(Keystrokes(0, "Ça va, señor?"))
    assert actions == [PasteText("Ç"), TypeText("a va, se"), PasteText("ñ"), TypeText("or?")]


def test_plan_nothing_to_do() -> None:
    assert plan_actions(Keystrokes()) == []


def test_run_actions_restores_the_previous_clipboard() -> None:
    clipboard = FakeClipboard("user's clipboard")
    backend = RecordingBackend(clipboard)
    actions = plan_actions(Keystrokes(1, "über 日本"))
    run_actions(actions, backend, clipboard, restore_delay=0, settle_delay=0, paste_delay=0)
    assert backend.events == [
        ("backspace", 1),
        ("paste", "ü"),
        ("type", "ber "),
        ("paste", "日本"),
    ]
    assert clipboard.content == "user's clipboard"


def test_typist_types_in_order_on_its_thread() -> None:
    clipboard = FakeClipboard("")
    backend = RecordingBackend(clipboard)
    threads: list[str] = []

    def factory() -> RecordingBackend:
        threads.append(threading.current_thread().name)
        return backend

    typist = Typist(backend_factory=factory, clipboard=clipboard)
    typist.submit(Keystrokes(0, "Hello"))
    typist.submit(Keystrokes(2, "p!"))
    typist.close()
    assert backend.events == [("type", "Hello"), ("backspace", 2), ("type", "p!")]
    assert threads == ["typist"]


def test_typist_reports_a_missing_backend_once() -> None:
    errors: list[str] = []

    def factory() -> RecordingBackend:
        raise KeystrokesUnavailable("no display")

    typist = Typist(backend_factory=factory, clipboard=FakeClipboard(""), on_error=errors.append)
    typist.submit(Keystrokes(0, "a"))
    typist.submit(Keystrokes(0, "b"))
    typist.close()
    assert errors == ["Voice typing cannot send keystrokes: no display"]


def test_xdotool_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    try:
        XdotoolBackend()
    except KeystrokesUnavailable as exc:
        assert "xdotool is not installed" in str(exc)
    else:
        raise AssertionError("expected KeystrokesUnavailable")
