"""Language detection restricted to a set: a pure choice over Whisper's language ranking.

Whisper ranks every language it knows from one encoder output.  A deployment serves far
fewer (``SOURCE_LANGUAGES``, narrowed per session by ``config.source_languages``), and short
or synthetic speech can rank a language nobody here speaks first (espeak-ng Italian heard as
Thai).  :func:`choose_language` takes the most probable language *inside* the set from the
same ranking (no second pass), renormalises its probability over the set, and remembers what
unrestricted detection would have answered, for the ``outside the set`` metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["set", "all", "hint"]


@dataclass(frozen=True)
class Detection:
    """The language a transcript is decoded in, and how sure the model was."""

    language: str
    #: Probability of ``language``: renormalised over the set when ``scope`` is ``set``.
    probability: float
    scope: Scope
    #: The top language over everything the model knows, and its probability.
    unrestricted_language: str
    unrestricted_probability: float

    @property
    def outside_set(self) -> bool:
        """True when unrestricted detection would have answered a language outside the set."""
        return self.unrestricted_language != self.language


def allowed_languages(
    deployment: Iterable[str], session: Sequence[str] | None, model_languages: Iterable[str]
) -> frozenset[str]:
    """The set detection may answer for one job; empty means no restriction.

    The session's list narrows the deployment's (``()`` from the deployment means "all");
    codes the model does not know are dropped.  A session list that leaves nothing (no
    overlap with the deployment) is ignored rather than leaving detection with no answer.
    """
    known = frozenset(model_languages)
    base = frozenset(deployment) & known
    if session:
        narrowed = frozenset(session) & known
        if base:
            narrowed &= base
        if narrowed:
            return narrowed
    return base


def choose_language(ranking: Iterable[tuple[str, float]], allowed: frozenset[str]) -> Detection:
    """The most probable language of ``ranking`` inside ``allowed`` (empty: any language).

    ``ranking`` is (code, probability) pairs as Whisper gives them (any order).  With a set,
    the probability is divided by the set's total mass, so it says how sure the model is
    among the languages it may answer.  If none of the set is ranked at all, the
    unrestricted answer stands (scope ``all``).
    """
    pairs = [(code, float(p)) for code, p in ranking]
    if not pairs:
        raise ValueError("an empty language ranking")
    top, top_p = max(pairs, key=lambda cp: cp[1])
    inside = [(c, p) for c, p in pairs if c in allowed] if allowed else []
    if not inside:
        return Detection(top, top_p, "all", top, top_p)
    best, best_p = max(inside, key=lambda cp: cp[1])
    mass = sum(p for _, p in inside)
    probability = best_p / mass if mass > 0 else 1.0 / len(inside)
    return Detection(best, min(1.0, probability), "set", top, top_p)
