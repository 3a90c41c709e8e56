"""The GUI's "Save transcript": the session's finals as TXT, SRT or WebVTT (the same writer as
the REST export), translations too; the button asks for a path through the file dialog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client_gui.controller import Controller
from client_gui.main_window import MainWindow
from client_gui.overlay import SubtitleOverlay
from client_gui.transcript_export import export_transcript, format_for
from common.subtitles import parse_srt
from speech_client.protocol import Final, Translation

FINALS = [
    Final(segment_id="s:0", text=" Hello there. ", language="en", start=0.5, end=1.75),
    Final(segment_id="s:1", text="", start=2.0, end=2.5),  # an empty final writes no cue
    Final(segment_id="s:2", text="How are you?", start=3.0, end=4.25),
    Final(segment_id="s:0", text=" Hello there. ", start=0.5, end=1.75),  # replayed after a resume
]
TRANSLATIONS = [Translation(segment_id="s:2", text="Wie geht es dir?", target_language="de")]


def test_formats() -> None:
    assert export_transcript(FINALS, TRANSLATIONS, "txt") == "Hello there.\nHow are you?\n"
    srt = export_transcript(FINALS, TRANSLATIONS, "srt")
    assert srt == "1\n00:00:00,500 --> 00:00:01,750\nHello there.\n\n2\n00:00:03,000 --> 00:00:04,250\nHow are you?\n"
    assert export_transcript(FINALS, TRANSLATIONS, "vtt").startswith("WEBVTT\n\n1\n00:00:00.500 --> 00:00:01.750\n")
    translated = parse_srt(export_transcript(FINALS, TRANSLATIONS, "srt", translated=True))
    assert [(c.start, c.text) for c in translated] == [(3.0, "Wie geht es dir?")]
    assert format_for("x.SRT") == "srt" and format_for("x.vtt") == "vtt" and format_for("notes") == "txt"


def test_save_button_writes_the_chosen_file(qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window = MainWindow()
    overlay = SubtitleOverlay()
    qtbot.addWidget(window)
    qtbot.addWidget(overlay)
    controller = Controller(window, overlay)
    try:
        for message in (*FINALS[:3], *TRANSLATIONS):
            controller.handle_message(message)
        target = tmp_path / "meeting"
        asked: list[str] = []

        def dialog(parent: Any, title: str, name: str, filters: str) -> tuple[str, str]:
            asked.append(filters)
            return str(target), "WebVTT subtitles (*.vtt)"

        monkeypatch.setattr("client_gui.controller.QFileDialog.getSaveFileName", dialog)
        window.save_button.click()
        saved = tmp_path / "meeting.vtt"
        assert saved.read_text(encoding="utf-8") == export_transcript(FINALS, TRANSLATIONS, "vtt")
        assert "Translation, SubRip subtitles (*.srt)" in asked[0]  # offered once a translation arrived
        controller.save_transcript(tmp_path / "de.srt", translated=True)
        assert "Wie geht es dir?" in (tmp_path / "de.srt").read_text(encoding="utf-8")
    finally:
        controller.shutdown()
