"""Tiny random-weight CTranslate2 models, built once per test session (tens of KB each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_translation import build_tiny_nllb_model, build_tiny_opus_mt_collection


@pytest.fixture(scope="session")
def tiny_nllb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nllb_model(tmp_path_factory.mktemp("nllb") / "tiny-nllb")


@pytest.fixture(scope="session")
def tiny_opus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_opus_mt_collection(
        tmp_path_factory.mktemp("opus") / "opus-mt",
        [("en", "es"), ("es", "en"), ("en", "fr")],
    )
