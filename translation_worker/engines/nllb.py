"""NLLB-200 on CTranslate2: one multilingual model, languages chosen by tokens.

The source is framed as the Hugging Face NLLB tokenizer does (``[src_lang] pieces </s>``);
the target language is forced as the first decoded token through ``target_prefix`` and
stripped from the output, as CTranslate2's NLLB guide does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from translation_worker.engines.base import EngineOptions
from translation_worker.engines.ct2 import (
    CTranslate2Engine,
    decode_kwargs,
    make_translator,
    read_model_config,
    read_vocabulary,
)
from translation_worker.engines.subword import (
    SubwordTokenizer,
    find_tokenizer_file,
    load_tokenizer,
)
from translation_worker.languages import ISO_TO_NLLB, VARIANTS_TO_NLLB, to_nllb

log = logging.getLogger(__name__)

#: Tokenizer files looked for in an NLLB model directory, preferred first.
NLLB_TOKENIZER_FILES = ("sentencepiece.bpe.model", "tokenizer.json")

_NLLB_TOKENS = frozenset(ISO_TO_NLLB.values()) | frozenset(VARIANTS_TO_NLLB.values())


def is_nllb_vocabulary(vocabulary: list[str]) -> bool:
    """NLLB vocabularies carry FLORES-200 language tokens."""
    return "eng_Latn" in vocabulary or "spa_Latn" in vocabulary


class NllbEngine(CTranslate2Engine):
    """Serves every pair of languages whose NLLB tokens are in the model's vocabulary."""

    kind = "nllb"

    def __init__(
        self,
        model_dir: str | Path,
        options: EngineOptions | None = None,
        tokenizer_file: str | Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.options = options or EngineOptions()
        tok_path = (
            Path(tokenizer_file)
            if tokenizer_file
            else find_tokenizer_file(self.model_dir, NLLB_TOKENIZER_FILES)
        )
        if tok_path is None:
            raise FileNotFoundError(
                f"{self.model_dir} has no {' or '.join(NLLB_TOKENIZER_FILES)}; "
                "convert with --copy_files sentencepiece.bpe.model or set TRANSLATION_TOKENIZER"
            )
        self.tokenizer: SubwordTokenizer = load_tokenizer(tok_path)
        self._vocabulary = frozenset(read_vocabulary(self.model_dir))
        config = read_model_config(self.model_dir)
        self._eos = str(config.get("eos_token", "</s>"))
        # Converted Hugging Face models leave EOS to the tokenizer; some conversions add it.
        self._append_eos = not bool(config.get("add_source_eos", False))
        self._translator: Any = make_translator(self.model_dir, self.options)

    def language_token(self, code: str | None) -> str | None:
        """The model's token for an ISO code, or None when the model lacks that language."""
        token = to_nllb(code)
        if token is None:
            return None
        # An empty vocabulary means we could not read it: trust the table.
        if self._vocabulary and token not in self._vocabulary:
            return None
        return token

    def supports(self, source: str | None, target: str | None) -> bool:
        return self.language_token(source) is not None and self.language_token(target) is not None

    def source_tokens(self, text: str, source: str) -> list[str]:
        """``[src_lang] pieces </s>``: what CTranslate2 is given for one sentence."""
        src_token = self.language_token(source)
        if src_token is None:
            raise ValueError(f"no NLLB token for {source!r}")
        tokens = [src_token, *self.tokenizer.encode(text)]
        if self._append_eos:
            tokens.append(self._eos)
        return tokens

    def _translate_group(self, source: str, target: str, texts: list[str]) -> list[str]:
        tgt_token = self.language_token(target)
        if tgt_token is None:
            raise ValueError(f"no NLLB token for {target!r}")
        batch = [self.source_tokens(text, source) for text in texts]
        results = self._translator.translate_batch(
            batch,
            target_prefix=[[tgt_token]] * len(batch),
            **decode_kwargs(self.options),
        )
        outputs = []
        for result in results:
            tokens = list(result.hypotheses[0])
            if tokens and tokens[0] == tgt_token:
                tokens = tokens[1:]
            # A confused model may emit language tokens mid-sentence; they are not text.
            outputs.append(self.tokenizer.decode(t for t in tokens if t not in _NLLB_TOKENS))
        return outputs

    def close(self) -> None:
        translator, self._translator = self._translator, None
        if translator is not None:
            translator.unload_model()
        del translator
