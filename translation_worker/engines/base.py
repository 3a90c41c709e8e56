"""The one interface every translation engine implements, and the batching logic they share.

An engine takes a batch of :class:`TranslationItem` from any number of sessions, groups it
by (source, target) so each group is one ``translate_batch`` call, passes same-language
items through untouched, and returns the translations in the order of the items.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from translation_worker.languages import (
    UnsupportedLanguagePair,
    normalize_language,
    same_language,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TranslationItem:
    """One sentence to translate: ISO 639-1 codes as the final and the session carry them."""

    text: str
    source_language: str | None
    target_language: str | None


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How engines load and decode; the worker builds it from its settings.

    ``device``/``compute_type`` are CTranslate2's (``cpu``/``cuda``; ``default``, ``int8``,
    ``float16``...), already resolved from ``auto``. ``max_batch_size`` 0 means one call per
    group whatever its size (CTranslate2 then sorts by length itself).
    """

    device: str = "cpu"
    compute_type: str = "default"
    cpu_threads: int = 0
    inter_threads: int = 1
    beam_size: int = 2
    max_decoding_length: int = 256
    max_input_length: int = 512
    max_batch_size: int = 0
    max_loaded_pairs: int = 4


@runtime_checkable
class TranslationEngine(Protocol):
    """What the manager and the worker need of an engine."""

    kind: str

    def supports(self, source: str | None, target: str | None) -> bool:
        """Whether this engine, with the models it has, can serve the pair."""
        ...

    def translate_batch(self, items: Sequence[TranslationItem]) -> list[str]:
        """Translations of ``items`` in order; raises UnsupportedLanguagePair for a bad pair."""
        ...

    def close(self) -> None:
        """Release models and memory; the engine is not used afterwards."""
        ...


PairKey = tuple[str, str]


def group_by_pair(items: Sequence[TranslationItem]) -> dict[PairKey, list[int]]:
    """Indices of the items that need a model call, grouped by normalised (source, target).

    Same-language and blank items are left out: they need no model. An item whose source or
    target is missing raises, since no engine can guess it.
    """
    groups: dict[PairKey, list[int]] = {}
    for index, item in enumerate(items):
        src = normalize_language(item.source_language)
        tgt = normalize_language(item.target_language)
        if src is None or tgt is None:
            raise UnsupportedLanguagePair(item.source_language, item.target_language, "a language is missing")
        if not item.text.strip() or same_language(src, tgt):
            continue
        groups.setdefault((src, tgt), []).append(index)
    return groups


class BatchingEngine(abc.ABC):
    """Base of the concrete engines: grouping, pass-through and order; subclasses translate
    one group of texts for one pair."""

    kind: str = "abstract"

    def translate_batch(self, items: Sequence[TranslationItem]) -> list[str]:
        groups = group_by_pair(items)
        # Check every pair first so a bad pair fails the call before any model time is spent.
        for src, tgt in groups:
            if not self.supports(src, tgt):
                raise UnsupportedLanguagePair(src, tgt, f"not served by this {self.kind} model")
        results = [item.text if item.text.strip() else "" for item in items]
        for (src, tgt), indices in groups.items():
            texts = [items[i].text.strip() for i in indices]
            translated = self._translate_group(src, tgt, texts)
            if len(translated) != len(texts):
                raise RuntimeError(f"engine returned {len(translated)} results for {len(texts)} inputs")
            for i, text in zip(indices, translated, strict=True):
                results[i] = text
        return results

    @abc.abstractmethod
    def supports(self, source: str | None, target: str | None) -> bool:
        """Whether the pair can be served."""

    @abc.abstractmethod
    def _translate_group(self, source: str, target: str, texts: list[str]) -> list[str]:
        """Translate texts that all share one normalised (source, target) pair."""

    def close(self) -> None:  # noqa: B027 - optional hook, engines without models keep it
        """Release models; the default has nothing to release."""
