"""The one SRT / WebVTT / text writer (REST export and the GUI's Save transcript)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.subtitles import Cue, parse_srt, render, srt_time, to_srt, to_txt, to_vtt, vtt_time


def test_timestamps() -> None:
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3723.4567) == "01:02:03,457"
    assert vtt_time(59.9996) == "00:01:00.000"
    assert srt_time(-1.0) == "00:00:00,000"


def test_formats_skip_empty_cues_and_number_the_rest() -> None:
    cues = [Cue(0.0, 1.2, "Hello there."), Cue(1.5, 2.0, "   "), Cue(2.5, 4.0, "Two\n\nlines --> here")]
    assert to_txt(cues) == "Hello there.\nTwo lines --> here\n"
    assert to_srt(cues) == (
        "1\n00:00:00,000 --> 00:00:01,200\nHello there.\n\n"
        "2\n00:00:02,500 --> 00:00:04,000\nTwo lines --> here\n"
    )
    assert to_vtt(cues) == (
        "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.200\nHello there.\n\n"
        "2\n00:00:02.500 --> 00:00:04.000\nTwo lines -> here\n"
    )
    assert render([], "srt") == "" and render([], "vtt") == "WEBVTT\n\n"


@given(st.lists(st.tuples(st.floats(0, 36000), st.floats(0, 30), st.text(min_size=1).filter(str.strip)),
                max_size=20))
def test_srt_round_trips(items: list[tuple[float, float, str]]) -> None:
    cues = [Cue(start, start + length, text) for start, length, text in items]
    back = parse_srt(to_srt(cues))
    assert [c.text for c in back] == [" ".join(c.text.split()) for c in cues]
    for original, parsed in zip(cues, back, strict=True):
        assert abs(parsed.start - original.start) <= 0.0005 + 1e-9
        assert abs(parsed.end - original.end) <= 0.0005 + 1e-9
