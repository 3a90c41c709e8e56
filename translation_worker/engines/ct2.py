"""What NLLB and opus-mt share on CTranslate2: reading a converted model directory (config,
vocabulary) and building a ``ctranslate2.Translator`` and its decoding arguments."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from translation_worker.engines.base import BatchingEngine, EngineOptions

log = logging.getLogger(__name__)

_VOCABULARY_FILES = (
    "shared_vocabulary.json",
    "shared_vocabulary.txt",
    "target_vocabulary.json",
    "target_vocabulary.txt",
)


def is_ct2_model_dir(path: Path) -> bool:
    """A converted CTranslate2 model: ``model.bin`` and ``config.json``."""
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """The model's ``config.json`` (add_source_eos, decoder_start_token, ...)."""
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def read_vocabulary(model_dir: Path) -> list[str]:
    """The target (or shared) vocabulary: where language tokens such as ``spa_Latn`` live."""
    for name in _VOCABULARY_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        if path.suffix == ".json":
            tokens = json.loads(path.read_text(encoding="utf-8"))
            return [str(t) for t in tokens]
        return path.read_text(encoding="utf-8").splitlines()
    return []


def make_translator(model_dir: Path, options: EngineOptions) -> Any:
    """Load a CTranslate2 translator (blocking: seconds for a real model)."""
    import ctranslate2

    log.info(
        "loading CTranslate2 model %s (device=%s, compute_type=%s)",
        model_dir,
        options.device,
        options.compute_type,
    )
    return ctranslate2.Translator(
        str(model_dir),
        device=options.device,
        compute_type=options.compute_type,
        inter_threads=options.inter_threads,
        intra_threads=options.cpu_threads,
    )


def decode_kwargs(options: EngineOptions) -> dict[str, Any]:
    """Keyword arguments for ``Translator.translate_batch``."""
    return {
        "beam_size": options.beam_size,
        "max_decoding_length": options.max_decoding_length,
        "max_input_length": options.max_input_length,
        "max_batch_size": options.max_batch_size,
        "batch_type": "examples",
    }


class CTranslate2Engine(BatchingEngine):
    """Base of the CTranslate2 engines (NLLB-200, opus-mt); :func:`load_ctranslate2_engine`
    picks the subclass from what the model directory holds."""

    kind = "ctranslate2"
