"""Session-level language evidence: when one utterance is too short to trust its detection.

Whisper decides a language from the audio of one job.  Under about two seconds of speech
that decision is weak (a greeting, "Sì.", a name), yet the first final of a session would
fix the language its words are decoded in.  This pure core keeps what the session's finals
have shown so far and answers one question for the code that commits finals (the streaming
commit logic of the gateway, issue 14): *hold this piece back?*  While the session has no
confident language, a piece of a turn with less than ``MIN_EVIDENCE_SECONDS`` of speech is
not committed on its own: it stays in the uncommitted tail, so the next job of the turn
carries it with more audio and its language is detected again on the longer audio (by the
same single encoder pass as any job; no extra inference).  At the end of a turn nothing is
held: a short turn is committed with the detection it has.

No I/O, no clock: the gateway feeds it finals (``observe``) and asks before a commit
(``hold_for_more_audio``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Speech behind a detection before the session trusts it.
MIN_EVIDENCE_SECONDS = 2.0
#: Detection probability (renormalised over the session's set) the session trusts.
CONFIDENT_PROBABILITY = 0.8


@dataclass(frozen=True)
class SessionLanguage:
    """The best language evidence a session has so far."""

    language: str | None = None
    probability: float = 0.0
    #: Seconds of speech behind ``language`` (the longest piece that decided it).
    speech_seconds: float = 0.0
    #: The client named the language: nothing to detect.
    pinned: bool = False

    @property
    def confident(self) -> bool:
        if self.pinned:
            return True
        return (
            self.language is not None
            and self.probability >= CONFIDENT_PROBABILITY
            and self.speech_seconds >= MIN_EVIDENCE_SECONDS
        )

    @property
    def hint(self) -> str | None:
        """The job field ``language_hint``: the confident language, else None."""
        return self.language if self.confident else None

    def observe(self, language: str | None, probability: float | None, speech_seconds: float,
                scope: str | None) -> SessionLanguage:
        """The evidence after one more final (``scope`` as on the final: set, all, hint)."""
        if not language:
            return self
        if scope == "hint":
            return SessionLanguage(language, 1.0, speech_seconds, pinned=True)
        p = float(probability or 0.0)
        candidate = SessionLanguage(language, p, speech_seconds)
        if candidate.confident or (not self.confident and _weight(candidate) > _weight(self)):
            # A confident final wins even over earlier evidence: the speaker may switch.
            return candidate
        return self


def _weight(s: SessionLanguage) -> float:
    return s.probability * min(s.speech_seconds, MIN_EVIDENCE_SECONDS)


def hold_for_more_audio(state: SessionLanguage, speech_seconds: float, *, turn_ended: bool) -> bool:
    """True: do not commit this piece yet; let the next job of the turn detect it again."""
    return not turn_ended and not state.confident and speech_seconds < MIN_EVIDENCE_SECONDS
