"""Language stickiness for ``source_language: auto`` (issue 14): a pure, clock-free core.

A session's language is what its confident detections said. Each final's detection is fed to
:meth:`StickyLanguage.observe`; a detection at least ``confident`` probable becomes the
session's language (the speaker may switch: a confident other language wins), a doubtful one
changes nothing. Jobs of the session then carry :attr:`StickyLanguage.hint`, and the STT
worker decodes in the hint when its own detection of that audio is doubtful (the Italian clip
whose first short utterance came out as Thai). Issue 20's language evidence (helper ``ci``)
may replace this with its richer rule; the job field stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIDENT_PROBABILITY = 0.8  # the STT worker's STICKY_PROBABILITY


@dataclass
class StickyLanguage:
    confident: float = CONFIDENT_PROBABILITY
    hint: str | None = None

    def observe(self, language: str | None, probability: float | None) -> None:
        """One final's detected language and its probability (None: not detected)."""
        if language and probability is not None and probability >= self.confident:
            self.hint = language

    def reset(self) -> None:
        """The client changed the source language: start over."""
        self.hint = None
