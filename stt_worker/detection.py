"""Language detection restricted to a set: a pure choice over Whisper's language ranking.

Whisper ranks every language it knows from one encoder output.  A deployment serves far
fewer (``SOURCE_LANGUAGES``, narrowed per session by ``config.source_languages``), and short
or synthetic speech can rank a language nobody here speaks first (espeak-ng Italian heard as
Thai).  :func:`choose_language` takes the most probable language *inside* the set from the
same ranking (no second pass), renormalises its probability over the set, and remembers what
unrestricted detection would have answered, for the ``outside the set`` metric.

Session-level evidence enters as a *hint*: the session's confident language so far (the
job's ``language_hint``, kept by the gateway).  A doubtful detection (below
``STICKY_PROBABILITY`` within the set) yields to the hint when the hint is one of the set:
a short utterance whose audio alone is unclear is decoded in the session's language, from
the same ranking, and the reported probability is the hint's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Scope = Literal["set", "all", "hint"]

#: A detection at least this probable (within the set) overrides the session's hint.
STICKY_PROBABILITY = 0.8


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


def choose_language(
    ranking: Iterable[tuple[str, float]],
    allowed: frozenset[str],
    hint: str | None = None,
    sticky: float = STICKY_PROBABILITY,
) -> Detection:
    """The most probable language of ``ranking`` inside ``allowed`` (empty: any language).

    ``ranking`` is (code, probability) pairs as Whisper gives them (any order).  With a set,
    the probability is divided by the set's total mass, so it says how sure the model is
    among the languages it may answer.  If none of the set is ranked at all, the
    unrestricted answer stands (scope ``all``).  ``hint``: the session's language, kept
    over a detection less probable than ``sticky`` (see the module docstring).
    """
    pairs = [(code, float(p)) for code, p in ranking]
    if not pairs:
        raise ValueError("an empty language ranking")
    top, top_p = max(pairs, key=lambda cp: cp[1])
    inside = [(c, p) for c, p in pairs if c in allowed] if allowed else []
    scope: Scope = "set" if inside else "all"
    candidates = inside or pairs
    mass = sum(p for _, p in candidates)

    def share(p: float) -> float:
        return min(1.0, p / mass) if mass > 0 else 1.0 / len(candidates)

    best, best_p = max(candidates, key=lambda cp: cp[1])
    probability = share(best_p) if scope == "set" else best_p
    ranked = dict(candidates)
    if hint and hint != best and hint in ranked and probability < sticky:
        best = hint
        probability = share(ranked[hint]) if scope == "set" else ranked[hint]
    return Detection(best, probability, scope, top, top_p)
