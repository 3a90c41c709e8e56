"""Timed text as plain text, SubRip (SRT) and WebVTT: one formatter for every export.

A :class:`Cue` is a piece of text with its start and end in seconds. The REST exports, the
OpenAI-compatible API and the clients all format through here, so an SRT is the same SRT
wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _clock(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _clean(cues: Iterable[Cue]) -> list[Cue]:
    # A cue with no text has nothing to show; a blank line inside one would end it early.
    return [Cue(c.start, max(c.end, c.start), " ".join(c.text.split())) for c in cues if c.text.strip()]


def to_text(cues: Iterable[Cue]) -> str:
    lines = [c.text for c in _clean(cues)]
    return "\n".join(lines) + ("\n" if lines else "")


def to_srt(cues: Iterable[Cue]) -> str:
    blocks = [
        f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(_clean(cues), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Iterable[Cue]) -> str:
    blocks = [f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{c.text}\n" for c in _clean(cues)]
    return "WEBVTT\n\n" + "\n".join(blocks)
