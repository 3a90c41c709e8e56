"""Subword tokenizers for CTranslate2 models: text to the token strings the model's vocabulary
holds, and back.

CTranslate2 takes token *strings*, so a SentencePiece model (NLLB's
``sentencepiece.bpe.model``, Marian's ``source.spm``/``target.spm``) is all that is needed;
a Hugging Face ``tokenizer.json`` (what many converted NLLB repositories ship instead) works
through the ``tokenizers`` library that faster-whisper already installs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

#: Tokens that never belong in the decoded text.
SPECIAL_TOKENS = frozenset({"<s>", "</s>", "<pad>", "<unk>"})


class SubwordTokenizer(Protocol):
    """Text <-> token strings."""

    def encode(self, text: str) -> list[str]:
        """Token strings of ``text``, no special tokens added."""
        ...

    def decode(self, tokens: Iterable[str]) -> str:
        """Text from token strings; special tokens are dropped."""
        ...


class SentencePieceTokenizer:
    """A SentencePiece model file."""

    def __init__(self, model_file: str | Path) -> None:
        import sentencepiece as spm

        self.path = Path(model_file)
        self._sp = spm.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, text: str) -> list[str]:
        pieces: list[str] = self._sp.encode(text, out_type=str)
        return pieces

    def decode(self, tokens: Iterable[str]) -> str:
        kept = [t for t in tokens if t not in SPECIAL_TOKENS]
        text: str = self._sp.decode(kept)
        return text.strip()


class HfJsonTokenizer:
    """A Hugging Face ``tokenizer.json`` (fast tokenizer), used without ``transformers``."""

    def __init__(self, tokenizer_file: str | Path) -> None:
        from tokenizers import Tokenizer

        self.path = Path(tokenizer_file)
        self._tok = Tokenizer.from_file(str(tokenizer_file))

    def encode(self, text: str) -> list[str]:
        # The file's post-processor would add one fixed language token; the engine adds the
        # right one itself, so special tokens stay off here.
        tokens: list[str] = self._tok.encode(text, add_special_tokens=False).tokens
        return tokens

    def decode(self, tokens: Iterable[str]) -> str:
        ids = [self._tok.token_to_id(t) for t in tokens if t not in SPECIAL_TOKENS]
        text: str = self._tok.decode([i for i in ids if i is not None], skip_special_tokens=True)
        return text.strip()


def load_tokenizer(path: str | Path) -> SubwordTokenizer:
    """A tokenizer from a ``.json`` (Hugging Face) or any other file (SentencePiece)."""
    path = Path(path)
    if path.suffix == ".json":
        return HfJsonTokenizer(path)
    return SentencePieceTokenizer(path)


def find_tokenizer_file(model_dir: Path, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that exists in ``model_dir``."""
    for name in names:
        candidate = model_dir / name
        if candidate.is_file():
            return candidate
    return None
