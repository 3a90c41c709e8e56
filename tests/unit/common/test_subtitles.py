"""SRT, WebVTT and plain text from timed cues."""

from __future__ import annotations

from common.subtitles import Cue, to_srt, to_text, to_vtt

CUES = [Cue(0.5, 2.25, "Hello there."), Cue(3.0, 3.0, "  "), Cue(3661.0015, 3662.5, "One\nhour  in.")]


def test_srt_numbers_cues_and_uses_commas() -> None:
    assert to_srt(CUES) == (
        "1\n00:00:00,500 --> 00:00:02,250\nHello there.\n\n"
        "2\n01:01:01,002 --> 01:01:02,500\nOne hour in.\n"
    )


def test_vtt_has_its_header_and_dots() -> None:
    assert to_vtt(CUES) == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:02.250\nHello there.\n\n01:01:01.002 --> 01:01:02.500\nOne hour in.\n"
    )


def test_text_is_one_line_per_cue_and_empty_stays_empty() -> None:
    assert to_text(CUES) == "Hello there.\nOne hour in.\n"
    assert to_text([]) == "" and to_srt([]) == "" and to_vtt([]) == "WEBVTT\n\n"


def test_an_end_before_its_start_is_clamped() -> None:
    assert "00:00:02,000 --> 00:00:02,000" in to_srt([Cue(2.0, 1.0, "x")])
