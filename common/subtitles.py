"""Transcript text formats: plain text, SubRip (SRT) and WebVTT, from timed cues.

The one place these formats are written: the transcript REST export (``/v1/sessions/{id}/
transcript``) and the GUI's "Save transcript" both call it. Pure functions, no I/O.
Cue times are seconds since the session began; an empty cue is left out (SRT and VTT have
no empty cues) and numbering counts only the cues written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

TextFormat = Literal["txt", "srt", "vtt"]
FORMATS: tuple[TextFormat, ...] = ("txt", "srt", "vtt")
MEDIA_TYPES: dict[TextFormat, str] = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    return _clock(seconds, ",")


def vtt_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    return _clock(seconds, ".")


def _clean(cues: Iterable[Cue]) -> list[Cue]:
    out = []
    for cue in cues:
        # A blank line would end a cue early in SRT and VTT: collapse the text's line breaks.
        text = " ".join(cue.text.split())
        if text:
            out.append(Cue(cue.start, max(cue.end, cue.start), text))
    return out


def to_txt(cues: Iterable[Cue]) -> str:
    """One line per final."""
    return "".join(f"{cue.text}\n" for cue in _clean(cues))


def to_srt(cues: Iterable[Cue]) -> str:
    blocks = [
        f"{n}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{cue.text}\n"
        for n, cue in enumerate(_clean(cues), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Iterable[Cue]) -> str:
    # "-->" may not appear inside a WebVTT cue's text.
    blocks = [
        f"{n}\n{vtt_time(cue.start)} --> {vtt_time(cue.end)}\n{cue.text.replace('-->', '->')}\n"
        for n, cue in enumerate(_clean(cues), start=1)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


WRITERS: dict[TextFormat, Callable[[Iterable[Cue]], str]] = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt}


def render(cues: Iterable[Cue], fmt: TextFormat) -> str:
    return WRITERS[fmt](cues)


def parse_srt(text: str) -> list[Cue]:
    """Cues back from SRT (what a client checks a downloaded export against)."""
    cues = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) < 3 or " --> " not in lines[1]:
            continue
        start, end = (_seconds(part.strip()) for part in lines[1].split(" --> "))
        cues.append(Cue(start, end, "\n".join(lines[2:])))
    return cues


def _seconds(stamp: str) -> float:
    hms, _, millis = stamp.replace(".", ",").partition(",")
    hours, minutes, secs = (int(p) for p in hms.split(":"))
    return hours * 3600 + minutes * 60 + secs + int(millis or 0) / 1000
