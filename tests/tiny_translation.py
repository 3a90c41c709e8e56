"""Tiny random-weight CTranslate2 translation models, built offline with numpy only.

No translation model can be installed offline, so tests and the benchmark build one with
CTranslate2's own model specs: a :class:`ctranslate2.converters.Converter` subclass whose
``_load`` returns ``TransformerSpec.from_config(...)`` filled with small random numpy weights
and a registered vocabulary, next to a SentencePiece model trained on a few sentences. The
result is a real model directory (tens of KB) that the real loading, tokenizing,
language-token and ``translate_batch`` code runs on, in milliseconds. Its output is random
subword soup: tests check plumbing, never translation quality.

    path = build_tiny_nllb_model(tmp_path / "nllb")            # NLLB-style, language tokens
    root = build_tiny_opus_mt_collection(tmp_path / "opus", [("en", "es"), ("es", "en")])
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Sentences the tiny SentencePiece models learn from (a few languages, so pieces cover them).
CORPUS: tuple[str, ...] = (
    "Hello, how are you today?",
    "The weather is nice and the sun is shining.",
    "I would like a cup of coffee, please.",
    "Where is the train station?",
    "We are building a real-time translation service.",
    "Thank you very much for your help.",
    "Hola, ¿cómo estás hoy?",
    "El tiempo es agradable y el sol brilla.",
    "Me gustaría una taza de café, por favor.",
    "¿Dónde está la estación de tren?",
    "Muchas gracias por tu ayuda.",
    "Bonjour, comment allez-vous aujourd'hui ?",
    "Je voudrais une tasse de café, s'il vous plaît.",
    "Guten Tag, wie geht es Ihnen heute?",
    "Vielen Dank für Ihre Hilfe.",
)

#: Language tokens the tiny NLLB model knows; other languages are "not in the model".
DEFAULT_NLLB_LANGUAGES: tuple[str, ...] = ("eng_Latn", "spa_Latn", "fra_Latn", "deu_Latn")

_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


@dataclass(frozen=True, slots=True)
class TinyModelOptions:
    """Size of the random model; the defaults give a ~50 KB model."""

    d_model: int = 16
    ffn_dim: int = 32
    num_heads: int = 2
    num_layers: int = 1
    spm_vocab_size: int = 80
    seed: int = 0
    #: Added to the projection bias of ``</s>`` so random decoding ends after a few tokens.
    eos_bias: float = 1.5
    #: Filler tokens appended to the vocabulary, to give the benchmark a realistic output
    #: projection (NLLB's vocabulary has 256k entries); 0 for tests.
    extra_vocab: int = 0


def train_sentencepiece(sentences: Iterable[str], output_file: Path, vocab_size: int) -> Path:
    """Train a small BPE SentencePiece model on ``sentences`` into ``output_file``."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        # A tiny corpus cannot always fill the requested size; take what it gives.
        hard_vocab_limit=False,
        minloglevel=2,
        # The default NFKC rule table is ~240 KB; identity keeps the model a few KB.
        normalization_rule_name="identity",
    )
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_bytes(model.getvalue())
    return output_file


def sentencepiece_pieces(model_file: Path) -> list[str]:
    """The ordinary pieces of a SentencePiece model (no control or unknown symbols)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    return [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))
    ]


def _linear(layer: object, out_dim: int, in_dim: int, rng: np.random.Generator) -> None:
    layer.weight = rng.normal(0.0, 0.3, (out_dim, in_dim)).astype(np.float32)  # type: ignore[attr-defined]
    layer.bias = np.zeros(out_dim, dtype=np.float32)  # type: ignore[attr-defined]


def _layer_norm(layer: object, dim: int) -> None:
    layer.gamma = np.ones(dim, dtype=np.float32)  # type: ignore[attr-defined]
    layer.beta = np.zeros(dim, dtype=np.float32)  # type: ignore[attr-defined]


def _random_transformer_spec(vocabulary: Sequence[str], pre_norm: bool, options: TinyModelOptions) -> object:
    """A TransformerSpec with random weights and ``vocabulary`` as shared source/target vocab."""
    from ctranslate2.specs import TransformerSpec

    rng = np.random.default_rng(options.seed)
    d, ff, vocab = options.d_model, options.ffn_dim, len(vocabulary)
    spec = TransformerSpec.from_config(
        (options.num_layers, options.num_layers), options.num_heads, pre_norm=pre_norm
    )
    enc, dec = spec.encoder, spec.decoder
    enc.embeddings[0].weight = rng.normal(0.0, 0.3, (vocab, d)).astype(np.float32)
    dec.embeddings.weight = rng.normal(0.0, 0.3, (vocab, d)).astype(np.float32)
    if pre_norm:
        _layer_norm(enc.layer_norm, d)
        _layer_norm(dec.layer_norm, d)
    for layer in enc.layer:
        _layer_norm(layer.self_attention.layer_norm, d)
        _linear(layer.self_attention.linear[0], 3 * d, d, rng)  # fused Q, K, V
        _linear(layer.self_attention.linear[1], d, d, rng)
        _layer_norm(layer.ffn.layer_norm, d)
        _linear(layer.ffn.linear_0, ff, d, rng)
        _linear(layer.ffn.linear_1, d, ff, rng)
    for layer in dec.layer:
        _layer_norm(layer.self_attention.layer_norm, d)
        _linear(layer.self_attention.linear[0], 3 * d, d, rng)
        _linear(layer.self_attention.linear[1], d, d, rng)
        _layer_norm(layer.attention.layer_norm, d)
        _linear(layer.attention.linear[0], d, d, rng)  # query
        _linear(layer.attention.linear[1], 2 * d, d, rng)  # fused K, V of the encoder output
        _linear(layer.attention.linear[2], d, d, rng)
        _layer_norm(layer.ffn.layer_norm, d)
        _linear(layer.ffn.linear_0, ff, d, rng)
        _linear(layer.ffn.linear_1, d, ff, rng)
    _linear(dec.projection, vocab, d, rng)
    dec.projection.bias[list(vocabulary).index("</s>")] += options.eos_bias
    spec.register_source_vocabulary(list(vocabulary))
    spec.register_target_vocabulary(list(vocabulary))
    spec.config.decoder_start_token = "</s>"
    return spec


def _convert(spec: object, output_dir: Path, files: dict[str, Path]) -> Path:
    """Write ``spec`` through CTranslate2's own Converter (validate, optimize, save)."""
    from ctranslate2.converters import Converter

    class _SpecConverter(Converter):
        def _load(self) -> object:
            return spec

    for name, path in files.items():
        spec.register_file(str(path), name)  # type: ignore[attr-defined]
    _SpecConverter().convert(str(output_dir), force=True)
    return output_dir


def _filler(options: TinyModelOptions) -> list[str]:
    return [f"<extra_{i}>" for i in range(options.extra_vocab)]


def _dedupe(tokens: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for token in tokens:
        seen.setdefault(token, None)
    return list(seen)


def build_tiny_nllb_model(
    output_dir: str | Path,
    languages: Sequence[str] = DEFAULT_NLLB_LANGUAGES,
    options: TinyModelOptions | None = None,
    sentences: Sequence[str] = CORPUS,
) -> Path:
    """An NLLB-style model dir: ``model.bin``, ``shared_vocabulary.json`` with language tokens
    such as ``spa_Latn``, and ``sentencepiece.bpe.model``."""
    options = options or TinyModelOptions()
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory() as tmp:
        spm_file = train_sentencepiece(
            sentences, Path(tmp) / "sentencepiece.bpe.model", options.spm_vocab_size
        )
        vocabulary = _dedupe([*_SPECIALS, *sentencepiece_pieces(spm_file), *languages, *_filler(options)])
        spec = _random_transformer_spec(vocabulary, pre_norm=True, options=options)
        return _convert(spec, output_dir, {"sentencepiece.bpe.model": spm_file})


def build_tiny_opus_mt_pair(
    output_dir: str | Path,
    options: TinyModelOptions | None = None,
    source_sentences: Sequence[str] = CORPUS,
    target_sentences: Sequence[str] = CORPUS,
) -> Path:
    """A Marian/opus-mt-style pair dir: ``model.bin``, shared vocabulary, ``source.spm`` and
    ``target.spm``. Name the directory like ``opus-mt-en-es`` so the pair is known."""
    options = options or TinyModelOptions()
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src_spm = train_sentencepiece(source_sentences, Path(tmp) / "source.spm", options.spm_vocab_size)
        tgt_spm = train_sentencepiece(target_sentences, Path(tmp) / "target.spm", options.spm_vocab_size)
        vocabulary = _dedupe(
            [*_SPECIALS, *sentencepiece_pieces(src_spm), *sentencepiece_pieces(tgt_spm), *_filler(options)]
        )
        # Marian is post-norm and starts decoding from a zero embedding.
        spec = _random_transformer_spec(vocabulary, pre_norm=False, options=options)
        spec.decoder.start_from_zero_embedding = True  # type: ignore[attr-defined]
        return _convert(spec, output_dir, {"source.spm": src_spm, "target.spm": tgt_spm})


def build_tiny_opus_mt_collection(
    root: str | Path,
    pairs: Sequence[tuple[str, str]] = (("en", "es"), ("es", "en")),
    options: TinyModelOptions | None = None,
) -> Path:
    """A directory of pair models named ``opus-mt-{src}-{tgt}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for index, (src, tgt) in enumerate(pairs):
        pair_options = options or TinyModelOptions(seed=index)
        build_tiny_opus_mt_pair(root / f"opus-mt-{src}-{tgt}", pair_options)
    return root
