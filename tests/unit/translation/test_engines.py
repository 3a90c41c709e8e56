"""Engines on tiny random-weight CTranslate2 models: real loading, tokenizing, language
tokens, grouping by pair, pass-through, order and the opus-mt pair LRU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tiny_translation import CORPUS
from translation_worker.engines import (
    EasyNMTEngine,
    EasyNmtNotInstalled,
    EngineOptions,
    NllbEngine,
    OpusMtEngine,
    TranslationEngine,
    TranslationItem,
    UnknownModelLayout,
    detect_model_kind,
    load_ctranslate2_engine,
)
from translation_worker.engines.opus_mt import pair_from_dir_name
from translation_worker.engines.subword import HfJsonTokenizer
from translation_worker.languages import UnsupportedLanguagePair

OPTIONS = EngineOptions(max_decoding_length=12, beam_size=1)


class TranslatorSpy:
    """Wraps the real ctranslate2.Translator to record each translate_batch call."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def translate_batch(self, source: list[list[str]], **kwargs: Any) -> Any:
        self.calls.append({"source": source, **kwargs})
        return self.real.translate_batch(source, **kwargs)

    def unload_model(self) -> None:
        self.real.unload_model()


@pytest.fixture
def nllb(tiny_nllb_dir: Path) -> NllbEngine:
    engine = load_ctranslate2_engine(tiny_nllb_dir, OPTIONS)
    assert isinstance(engine, NllbEngine)
    return engine


def test_detects_model_kinds(tiny_nllb_dir: Path, tiny_opus_root: Path, tmp_path: Path) -> None:
    assert detect_model_kind(tiny_nllb_dir) == "nllb"
    assert detect_model_kind(tiny_opus_root) == "opus-mt"
    assert detect_model_kind(tiny_opus_root / "opus-mt-en-es") == "opus-mt"
    with pytest.raises(UnknownModelLayout):
        detect_model_kind(tmp_path)


def test_engines_satisfy_the_interface(nllb: NllbEngine, tiny_opus_root: Path) -> None:
    assert isinstance(nllb, TranslationEngine)
    assert isinstance(OpusMtEngine(tiny_opus_root, OPTIONS), TranslationEngine)


def test_nllb_source_is_framed_with_language_token_and_eos(nllb: NllbEngine) -> None:
    tokens = nllb.source_tokens("Hello, how are you?", "en")
    assert tokens[0] == "eng_Latn"
    assert tokens[-1] == "</s>"
    assert "".join(tokens[1:-1]).replace("▁", " ").strip() == "Hello, how are you?"


def test_nllb_supports_only_languages_in_its_vocabulary(nllb: NllbEngine) -> None:
    assert nllb.supports("en", "es")
    assert nllb.supports("de", "fr")
    assert not nllb.supports("en", "ja")  # valid NLLB language, not in this tiny model
    assert not nllb.supports("en", "xx")


def test_nllb_groups_by_pair_with_target_prefix(nllb: NllbEngine) -> None:
    spy = TranslatorSpy(nllb._translator)
    nllb._translator = spy
    items = [
        TranslationItem("Hello, how are you today?", "en", "es"),
        TranslationItem("Guten Tag", "de", "fr"),
        TranslationItem("Where is the train station?", "en", "es"),
        TranslationItem("Unchanged text", "en", "en"),
        TranslationItem("   ", "de", "es"),
    ]
    out = nllb.translate_batch(items)

    assert len(out) == len(items)
    assert all(isinstance(text, str) for text in out)
    assert out[3] == "Unchanged text"  # same language passes through
    assert out[4] == ""  # blank input needs no model
    assert len(spy.calls) == 2  # one call per (source, target) group
    by_prefix = {call["target_prefix"][0][0]: call for call in spy.calls}
    assert set(by_prefix) == {"spa_Latn", "fra_Latn"}
    assert [s[0] for s in by_prefix["spa_Latn"]["source"]] == ["eng_Latn", "eng_Latn"]
    assert by_prefix["fra_Latn"]["source"][0][0] == "deu_Latn"
    for text in out:
        assert "spa_Latn" not in text and "fra_Latn" not in text and "</s>" not in text


def test_batched_results_match_one_at_a_time_in_order(nllb: NllbEngine) -> None:
    items = [TranslationItem(text, "en", "es") for text in CORPUS[:6]]
    batched = nllb.translate_batch(items)
    single = [nllb.translate_batch([item])[0] for item in items]
    assert batched == single


def test_unsupported_pair_fails_before_any_model_call(nllb: NllbEngine) -> None:
    spy = TranslatorSpy(nllb._translator)
    nllb._translator = spy
    with pytest.raises(UnsupportedLanguagePair) as info:
        nllb.translate_batch([TranslationItem("hi", "en", "es"), TranslationItem("hi", "en", "ja")])
    assert info.value.code == "unsupported_language_pair"
    assert spy.calls == []
    with pytest.raises(UnsupportedLanguagePair):
        nllb.translate_batch([TranslationItem("hi", None, "es")])


def test_nllb_with_a_hugging_face_tokenizer_json(tiny_nllb_dir: Path, tmp_path: Path) -> None:
    from tokenizers import SentencePieceBPETokenizer

    trained = SentencePieceBPETokenizer()
    trained.train_from_iterator(list(CORPUS), vocab_size=100, show_progress=False)
    tokenizer_file = tmp_path / "tokenizer.json"
    trained.save(str(tokenizer_file))

    engine = NllbEngine(tiny_nllb_dir, OPTIONS, tokenizer_file=tokenizer_file)
    assert isinstance(engine.tokenizer, HfJsonTokenizer)
    tokens = engine.source_tokens("Thank you very much", "en")
    assert tokens[0] == "eng_Latn" and tokens[-1] == "</s>"
    assert engine.tokenizer.decode(tokens) == "Thank you very much"
    assert isinstance(engine.translate_batch([TranslationItem("Thank you", "en", "de")])[0], str)


@pytest.mark.parametrize(
    ("name", "pair"),
    [
        ("opus-mt-en-es", ("en", "es")),
        ("Helsinki-NLP--opus-mt-de-en-ct2", ("de", "en")),
        ("opus-mt-en-fr-int8", ("en", "fr")),
        ("en-es", ("en", "es")),
        ("nllb-200", None),
    ],
)
def test_pair_from_dir_name(name: str, pair: tuple[str, str] | None) -> None:
    assert pair_from_dir_name(name) == pair


def test_opus_mt_translates_each_pair_with_its_model(tiny_opus_root: Path) -> None:
    engine = OpusMtEngine(tiny_opus_root, OPTIONS)
    assert engine.supports("en", "es") and engine.supports("EN-us", "fr")
    assert not engine.supports("fr", "de")
    items = [
        TranslationItem("Hello there", "en", "es"),
        TranslationItem("Hola amigo", "es", "en"),
        TranslationItem("Same", "es", "es"),
    ]
    out = engine.translate_batch(items)
    assert len(out) == 3 and out[2] == "Same"
    assert all(isinstance(text, str) and "</s>" not in text for text in out)
    assert sorted(engine.loaded_pairs) == [("en", "es"), ("es", "en")]
    with pytest.raises(UnsupportedLanguagePair):
        engine.translate_batch([TranslationItem("Bonjour", "fr", "de")])


def test_opus_mt_single_pair_directory(tiny_opus_root: Path) -> None:
    engine = load_ctranslate2_engine(tiny_opus_root / "opus-mt-en-fr", OPTIONS)
    assert isinstance(engine, OpusMtEngine)
    assert list(engine.pairs) == [("en", "fr")]
    pair = engine.pair_model("en", "fr")
    assert pair.source_tokens("Hello")[-1] == "</s>"


def test_opus_mt_pair_lru_evicts_least_recently_used(tiny_opus_root: Path) -> None:
    engine = OpusMtEngine(tiny_opus_root, EngineOptions(max_decoding_length=8, max_loaded_pairs=2))
    for src, tgt in [("en", "es"), ("es", "en"), ("en", "es"), ("en", "fr")]:
        engine.translate_batch([TranslationItem("Hello", src, tgt)])
    # es-en was least recently used when en-fr arrived.
    assert engine.loaded_pairs == [("en", "es"), ("en", "fr")]
    assert (engine.loads, engine.evictions) == (3, 1)
    engine.translate_batch([TranslationItem("Hola", "es", "en")])
    assert engine.loaded_pairs == [("en", "fr"), ("es", "en")]
    assert (engine.loads, engine.evictions) == (4, 2)
    engine.close()
    assert engine.loaded_pairs == []


def test_easynmt_engine_explains_a_missing_extra() -> None:
    try:
        import easynmt  # noqa: F401
    except ImportError:
        with pytest.raises(EasyNmtNotInstalled, match="pip install"):
            EasyNMTEngine("opus-mt")
    else:
        pytest.skip("easynmt is installed; its engine downloads models on first use")
