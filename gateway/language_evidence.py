"""The session's language: what its detections have shown so far, and when to wait for more.

Whisper decides a language from the audio of one job.  Under about two seconds of speech
that decision is weak (a greeting, "Sì.", a name), yet the first final of a session would
fix the language its words are decoded in.  :class:`SessionLanguage` is the one memory of a
session's language (issue 20; it replaced issue 14's probability-only stickiness).  It answers
two questions:

* :attr:`SessionLanguage.hint`: the language the session's jobs carry as ``language_hint``
  (the STT worker keeps it over a doubtful detection of a job's own audio, so a short, unclear
  piece does not flip the language).  Only a *confident* language is a hint: at least
  ``CONFIDENT_PROBABILITY`` probable (renormalised over the session's set) on at least
  ``MIN_EVIDENCE_SECONDS`` of speech.  A doubtful detection never replaces a confident one; a
  confident one does (the speaker may switch).
* :func:`hold_for_more_audio`, asked by the streaming-commit logic before a pause or agreement
  commit: while the session has no confident language, a piece of a turn with less than
  ``MIN_EVIDENCE_SECONDS`` of speech is not committed on its own.  It stays in the uncommitted
  tail, so the next job of the turn carries it with more audio and its language is detected
  again on the longer audio (by the same single encoder pass as any job; no extra inference).
  At the end of a turn nothing is held, and cuts of over-long speech are never held.

A language that was not detected but given is decisive at once (scope ``hint`` on a result):
the client pinned it (``source_language``), or the model knows one language only (an
English-only model such as ``tiny.en`` answers "en", 1.0, scope ``hint``, for every job), so
a session on such a model never holds a piece back.

Immutable, no I/O, no clock: :meth:`SessionLanguage.observe` returns the evidence after one
more result.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Speech behind a detection before the session trusts it.
MIN_EVIDENCE_SECONDS = 2.0
#: Detection probability (renormalised over the session's set) the session trusts; the STT
#: worker's STICKY_PROBABILITY, above which a job's own detection overrides the hint.
CONFIDENT_PROBABILITY = 0.8


@dataclass(frozen=True)
class SessionLanguage:
    """The best language evidence a session has so far."""

    language: str | None = None
    probability: float = 0.0
    #: Seconds of speech behind ``language`` (the piece that decided it).
    speech_seconds: float = 0.0
    #: Not detected but given (by the client, or by an English-only model): nothing to weigh.
    pinned: bool = False

    @classmethod
    def for_source(cls, source_language: str | None) -> SessionLanguage:
        """A session's evidence at its start: pinned to ``source_language``, or nothing (auto)."""
        if source_language:
            return cls(source_language, 1.0, 0.0, pinned=True)
        return cls()

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
        """The evidence after one more result (``scope`` as on a final: set, all, hint)."""
        if not language:
            return self
        if scope == "hint":
            return SessionLanguage(language, 1.0, speech_seconds, pinned=True)
        p = float(probability or 0.0)
        candidate = SessionLanguage(language, p, max(0.0, speech_seconds))
        if candidate.confident or (not self.confident and _weight(candidate) > _weight(self)):
            # A confident result wins even over earlier evidence: the speaker may switch.
            return candidate
        return self


def _weight(s: SessionLanguage) -> float:
    return s.probability * min(s.speech_seconds, MIN_EVIDENCE_SECONDS)


def hold_for_more_audio(state: SessionLanguage, speech_seconds: float, *, turn_ended: bool) -> bool:
    """True: do not commit this piece yet; let the next job of the turn detect it again."""
    return not turn_ended and not state.confident and speech_seconds < MIN_EVIDENCE_SECONDS
