"""The --fetch-srt comparison: it passes on an identical transcript and names what differs."""

from __future__ import annotations

from common.subtitles import Cue
from demos.manifest import Clip
from demos.metrics import Received, SessionRecord
from demos.srt_check import compare, live_cues, rest_base, session_id


def _record() -> SessionRecord:
    record = SessionRecord(index=0, clip=Clip("en", "en.wav", "en", 16000, 9.0, ()))
    for message in (
        {"type": "ready", "session_id": "abc"},
        {"type": "final", "segment_id": "abc:0", "text": "Hello  there.", "start": 0.25, "end": 1.5},
        {"type": "final", "segment_id": "abc:1", "text": "", "start": 2.0, "end": 2.2},
        {"type": "translation", "segment_id": "abc:0", "text": "Hallo."},
        {"type": "final", "segment_id": "abc:2", "text": "Bye.", "start": 3.0, "end": 3.5},
    ):
        record.received.append(Received(0.0, message))
    return record


def test_live_cues_are_what_an_srt_of_the_finals_holds() -> None:
    record = _record()
    assert session_id(record) == "abc"
    assert live_cues(record) == [Cue(0.25, 1.5, "Hello there."), Cue(3.0, 3.5, "Bye.")]
    assert rest_base("ws://127.0.0.1:5026/") == "http://127.0.0.1:5026"
    assert rest_base("wss://speech.example.com/ws") == "https://speech.example.com"


def test_compare_names_each_difference() -> None:
    live = live_cues(_record())
    assert compare(live, list(live)) == []
    problems = compare(live, [Cue(0.25, 1.5, "Hello there."), Cue(3.0, 3.6, "Bye.")])
    assert problems == ["cue 2: live 3.000-3.500 'Bye.', stored 3.000-3.600 'Bye.'"]
    assert compare(live, live[:1])[0] == "2 finals received live, 1 cues in the stored SRT"
