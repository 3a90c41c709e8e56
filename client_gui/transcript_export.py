"""What "Save transcript" writes: the session's finals (or their translations) as plain text,
SRT or WebVTT, through :mod:`common.subtitles`, the same writer as the gateway's REST export.
Pure: the controller asks for a path and writes the string."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common.subtitles import FORMATS, Cue, TextFormat, render
from speech_client.protocol import Final, Translation

# File dialog filters: label -> (format, translated).
FILTERS: dict[str, tuple[TextFormat, bool]] = {
    "Plain text (*.txt)": ("txt", False),
    "SubRip subtitles (*.srt)": ("srt", False),
    "WebVTT subtitles (*.vtt)": ("vtt", False),
}
TRANSLATION_FILTERS: dict[str, tuple[TextFormat, bool]] = {
    "Translation, plain text (*.txt)": ("txt", True),
    "Translation, SubRip subtitles (*.srt)": ("srt", True),
    "Translation, WebVTT subtitles (*.vtt)": ("vtt", True),
}


def format_for(path: str | Path, default: TextFormat = "txt") -> TextFormat:
    suffix = Path(path).suffix.lower().lstrip(".")
    for fmt in FORMATS:
        if suffix == fmt:
            return fmt
    return default


def transcript_cues(
    finals: Iterable[Final], translations: Iterable[Translation] = (), *, translated: bool = False
) -> list[Cue]:
    """One cue per final, in the order received (a final replayed after a resume counts once)."""
    translated_text = {t.segment_id: t.text for t in translations}
    cues: list[Cue] = []
    seen: set[object] = set()
    for final in finals:
        if final.segment_id in seen:
            continue
        seen.add(final.segment_id)
        start = final.start or 0.0
        end = final.end if final.end is not None else start
        text = (translated_text.get(final.segment_id) or final.translation or "") if translated else final.text
        cues.append(Cue(start, end, text))
    return cues


def export_transcript(
    finals: Iterable[Final], translations: Iterable[Translation], fmt: TextFormat, *, translated: bool = False
) -> str:
    return render(transcript_cues(finals, translations, translated=translated), fmt)
