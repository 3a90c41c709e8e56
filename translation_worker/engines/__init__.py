"""Translation engines behind one interface (:class:`TranslationEngine`).

``load_ctranslate2_engine(path)`` looks at a converted model directory and returns an
:class:`NllbEngine` (one multilingual model) or an :class:`OpusMtEngine` (one model per
pair). :class:`EasyNMTEngine` is the optional ``easynmt`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from translation_worker.engines.base import (
    BatchingEngine,
    EngineOptions,
    TranslationEngine,
    TranslationItem,
    group_by_pair,
)
from translation_worker.engines.ct2 import CTranslate2Engine, is_ct2_model_dir, read_vocabulary
from translation_worker.engines.easynmt_engine import EasyNMTEngine, EasyNmtNotInstalled
from translation_worker.engines.nllb import NllbEngine, is_nllb_vocabulary
from translation_worker.engines.opus_mt import OpusMtEngine, discover_pairs, is_opus_mt_pair_dir

ModelKind = Literal["nllb", "opus-mt"]

__all__ = [
    "BatchingEngine",
    "CTranslate2Engine",
    "EasyNMTEngine",
    "EasyNmtNotInstalled",
    "EngineOptions",
    "ModelKind",
    "NllbEngine",
    "OpusMtEngine",
    "TranslationEngine",
    "TranslationItem",
    "UnknownModelLayout",
    "detect_model_kind",
    "group_by_pair",
    "load_ctranslate2_engine",
]


class UnknownModelLayout(ValueError):
    """The directory is neither an NLLB model nor opus-mt pair model(s)."""


def detect_model_kind(path: str | Path) -> ModelKind:
    """``opus-mt`` for a pair directory or a directory of them; ``nllb`` for a model whose
    vocabulary has NLLB language tokens."""
    path = Path(path)
    if not path.is_dir():
        raise UnknownModelLayout(f"{path} is not a directory")
    if is_opus_mt_pair_dir(path):
        return "opus-mt"
    if is_ct2_model_dir(path):
        if is_nllb_vocabulary(read_vocabulary(path)):
            return "nllb"
        raise UnknownModelLayout(
            f"{path} is a CTranslate2 model but neither NLLB (no language tokens such as eng_Latn) "
            "nor opus-mt (no source.spm/target.spm)"
        )
    if any(is_opus_mt_pair_dir(child) for child in path.iterdir() if child.is_dir()):
        return "opus-mt"
    raise UnknownModelLayout(f"{path} holds no CTranslate2 model (model.bin + config.json)")


def load_ctranslate2_engine(
    path: str | Path,
    options: EngineOptions | None = None,
    kind: ModelKind | Literal["auto"] = "auto",
    tokenizer_file: str | Path | None = None,
) -> CTranslate2Engine:
    """Load the engine for a model directory (blocking). ``tokenizer_file`` overrides the
    NLLB tokenizer for converted models that ship none."""
    resolved: ModelKind = detect_model_kind(path) if kind == "auto" else kind
    if resolved == "nllb":
        return NllbEngine(path, options, tokenizer_file=tokenizer_file)
    return OpusMtEngine(path, options)


# Re-exported for callers that want the discovery without loading.
discover_opus_mt_pairs = discover_pairs
