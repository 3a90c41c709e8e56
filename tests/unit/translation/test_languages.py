"""The language table: coverage, normalisation, pair support and the error code."""

from __future__ import annotations

import re

import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES
from hypothesis import given
from hypothesis import strategies as st

from translation_worker.languages import (
    ISO_TO_NLLB,
    MOST_SPOKEN,
    WHISPER_WITHOUT_NLLB,
    UnsupportedLanguagePair,
    check_pair,
    from_nllb,
    normalize_language,
    opus_mt_dir_name,
    opus_mt_model_name,
    same_language,
    supports,
    to_nllb,
)

NLLB_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


def test_at_least_twenty_most_spoken_languages_map_to_nllb() -> None:
    assert len(MOST_SPOKEN) >= 20
    mapped = {code: to_nllb(code) for code in MOST_SPOKEN}
    assert all(mapped.values()), [c for c, v in mapped.items() if v is None]
    assert mapped["es"] == "spa_Latn"
    assert mapped["zh"] == "zho_Hans"
    assert mapped["ar"] == "arb_Arab"
    assert mapped["yue"] == "yue_Hant"


def test_every_whisper_language_nllb_has_is_mapped() -> None:
    unmapped = {code for code in WHISPER_LANGUAGES if to_nllb(code) is None}
    assert unmapped == set(WHISPER_WITHOUT_NLLB)
    # "Mappable" is most of them: all but Latin, Breton and Hawaiian.
    assert len(WHISPER_LANGUAGES) - len(unmapped) >= 97


def test_nllb_codes_are_well_formed_and_invert() -> None:
    for iso, nllb in ISO_TO_NLLB.items():
        assert NLLB_CODE.match(nllb), (iso, nllb)
        assert to_nllb(from_nllb(nllb)) == nllb


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("EN", "en"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("jw", "jv"),  # Whisper's code for Javanese
        ("iw", "he"),
        ("zh-TW", "zh-tw"),
        (" auto ", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_language(raw: str | None, expected: str | None) -> None:
    assert normalize_language(raw) == expected


def test_traditional_chinese_variant_has_its_own_token() -> None:
    assert to_nllb("zh-TW") == "zho_Hant"
    assert to_nllb("zh-CN") == "zho_Hans"
    assert same_language("zh", "zh-CN")
    assert not same_language("zh", "zh-TW")


@given(st.sampled_from(sorted(ISO_TO_NLLB)))
def test_case_and_region_do_not_change_the_mapping(code: str) -> None:
    assert to_nllb(code.upper()) == to_nllb(code)
    assert to_nllb(f"{code}-XX") == to_nllb(code) or code.startswith("zh")


def test_supports_per_engine_kind() -> None:
    assert supports("en", "es", "nllb")
    assert supports("jw", "en", "nllb")
    assert not supports("la", "en", "nllb")  # no NLLB token for Latin
    assert not supports("en", "xx", "nllb")
    assert not supports(None, "en", "nllb")
    assert not supports("en", "auto", "nllb")
    assert supports("en", "en", "nllb")  # pass-through
    assert supports("en", "de", "opus-mt")
    assert not supports("en", "de", "no-such-engine")


def test_unsupported_pair_error_carries_the_client_code() -> None:
    with pytest.raises(UnsupportedLanguagePair) as info:
        check_pair("en", "xx", "nllb")
    assert info.value.code == "unsupported_language_pair"
    assert (info.value.source, info.value.target) == ("en", "xx")
    assert "'xx'" in str(info.value)


def test_opus_mt_naming() -> None:
    assert opus_mt_model_name("en", "es") == "Helsinki-NLP/opus-mt-en-es"
    assert opus_mt_dir_name("EN-us", "jw") == "opus-mt-en-jv"
    with pytest.raises(UnsupportedLanguagePair):
        opus_mt_dir_name("en", "auto")
