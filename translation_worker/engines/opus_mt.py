"""Marian / opus-mt models on CTranslate2: one converted model directory per language pair.

A model directory holds ``source.spm`` and ``target.spm`` (copied at conversion:
``ct2-transformers-converter --model Helsinki-NLP/opus-mt-en-es --output_dir
opus-mt-en-es --copy_files source.spm target.spm``). ``TRANSLATION_MODEL`` may name one
pair directory or a directory of them (``opus-mt-en-es/``, ``en-es/``...). Pair models load
on first use and stay in a bounded LRU (``TRANSLATION_MAX_LOADED_PAIRS``) so a worker that
serves many pairs does not hold them all in memory.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from translation_worker.engines.base import EngineOptions, PairKey
from translation_worker.engines.ct2 import (
    CTranslate2Engine,
    decode_kwargs,
    is_ct2_model_dir,
    make_translator,
    read_model_config,
)
from translation_worker.engines.subword import SentencePieceTokenizer
from translation_worker.languages import opus_mt_code

log = logging.getLogger(__name__)

# "opus-mt-en-es", "Helsinki-NLP--opus-mt-en-es-ct2", "opus-mt-en-es-int8" or plain "en-es".
_PAIR_NAME = re.compile(r"(?:^|[-_])opus-mt-([a-z]{2,3})-([a-z]{2,3})(?:$|[-_.])")
_BARE_PAIR = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")


def pair_from_dir_name(name: str) -> PairKey | None:
    """The (source, target) pair a directory name announces, if any."""
    match = _PAIR_NAME.search(name) or _BARE_PAIR.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2)


def is_opus_mt_pair_dir(path: Path) -> bool:
    """A converted Marian model with its SentencePiece models beside it."""
    return is_ct2_model_dir(path) and (path / "source.spm").is_file() and (path / "target.spm").is_file()


def discover_pairs(root: Path) -> dict[PairKey, Path]:
    """Pair models under ``root``: ``root`` itself when it is one, else its subdirectories."""
    found: dict[PairKey, Path] = {}
    if is_opus_mt_pair_dir(root):
        pair = pair_from_dir_name(root.name)
        if pair is None:
            raise ValueError(
                f"cannot tell the language pair of {root}: name it like opus-mt-en-es or put it in a "
                "directory of pair models"
            )
        found[pair] = root
        return found
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        pair = pair_from_dir_name(child.name)
        if pair is not None and is_opus_mt_pair_dir(child):
            found.setdefault(pair, child)
    return found


class OpusMtPairModel:
    """One loaded pair: translator plus source and target SentencePiece models."""

    def __init__(self, model_dir: Path, options: EngineOptions) -> None:
        self.model_dir = model_dir
        self.source_tokenizer = SentencePieceTokenizer(model_dir / "source.spm")
        self.target_tokenizer = SentencePieceTokenizer(model_dir / "target.spm")
        config = read_model_config(model_dir)
        self._eos = str(config.get("eos_token", "</s>"))
        # Models converted from Transformers expect the tokenizer's "</s>"; Marian-native
        # conversions set add_source_eos and CTranslate2 adds it itself.
        self._append_eos = not bool(config.get("add_source_eos", False))
        self._options = options
        self._translator: Any = make_translator(model_dir, options)

    def source_tokens(self, text: str) -> list[str]:
        tokens = self.source_tokenizer.encode(text)
        if self._append_eos:
            tokens.append(self._eos)
        return tokens

    def translate(self, texts: list[str]) -> list[str]:
        batch = [self.source_tokens(text) for text in texts]
        results = self._translator.translate_batch(batch, **decode_kwargs(self._options))
        return [self.target_tokenizer.decode(r.hypotheses[0]) for r in results]

    def close(self) -> None:
        translator, self._translator = self._translator, None
        if translator is not None:
            translator.unload_model()


class OpusMtEngine(CTranslate2Engine):
    """Serves the pairs whose model directories it found, loading them lazily (LRU)."""

    kind = "opus-mt"

    def __init__(self, root: str | Path, options: EngineOptions | None = None) -> None:
        self.root = Path(root)
        self.options = options or EngineOptions()
        self.pairs = discover_pairs(self.root)
        if not self.pairs:
            raise FileNotFoundError(f"no opus-mt pair models (with source.spm/target.spm) in {self.root}")
        self._loaded: OrderedDict[PairKey, OpusMtPairModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        self.evictions = 0

    @staticmethod
    def _key(source: str | None, target: str | None) -> PairKey | None:
        src, tgt = opus_mt_code(source), opus_mt_code(target)
        if src is None or tgt is None:
            return None
        return src, tgt

    def supports(self, source: str | None, target: str | None) -> bool:
        key = self._key(source, target)
        return key is not None and key in self.pairs

    @property
    def loaded_pairs(self) -> list[PairKey]:
        """Loaded pairs, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def pair_model(self, source: str, target: str) -> OpusMtPairModel:
        """The loaded model for a pair, loading it (and evicting the LRU one) if needed."""
        key = self._key(source, target)
        if key is None or key not in self.pairs:
            raise KeyError((source, target))
        with self._lock:
            model = self._loaded.get(key)
            if model is not None:
                self._loaded.move_to_end(key)
                return model
            # Loading under the lock: two threads asking for one new pair load it once.
            model = OpusMtPairModel(self.pairs[key], self.options)
            self.loads += 1
            self._loaded[key] = model
            while len(self._loaded) > max(1, self.options.max_loaded_pairs):
                old_key, old = self._loaded.popitem(last=False)
                log.info("unloading opus-mt pair %s-%s (LRU, %d loaded)", *old_key, len(self._loaded))
                old.close()
                self.evictions += 1
            return model

    def _translate_group(self, source: str, target: str, texts: list[str]) -> list[str]:
        return self.pair_model(source, target).translate(texts)

    def close(self) -> None:
        with self._lock:
            models = list(self._loaded.values())
            self._loaded.clear()
        for model in models:
            model.close()
