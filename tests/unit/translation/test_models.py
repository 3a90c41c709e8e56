"""Model resolution: a local directory, a hub id (cache, download, offline), clear reasons."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from translation_worker.models import (
    DEFAULT_NLLB_TOKENIZER_REPO,
    ResolveOptions,
    TranslationModelUnavailable,
    resolve_translation_model,
)


class Hub:
    """Stands in for huggingface_hub.snapshot_download (the network boundary)."""

    def __init__(self, cached: dict[str, Path] | None = None, online: dict[str, Path] | None = None) -> None:
        self.cached = cached or {}
        self.online = online or {}
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, repo_id: str, local_files_only: bool = False, **_: Any) -> str:
        self.calls.append((repo_id, local_files_only))
        if repo_id in self.cached:
            return str(self.cached[repo_id])
        if local_files_only:
            raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")
        if repo_id in self.online:
            return str(self.online[repo_id])
        raise LocalEntryNotFoundError("ConnectError: [Errno -2] Name or service not known\nmore detail")


def test_empty_setting_is_unavailable_with_a_reason() -> None:
    with pytest.raises(TranslationModelUnavailable) as info:
        resolve_translation_model(ResolveOptions(model=""))
    assert info.value.code == "translation_unavailable"
    assert "TRANSLATION_MODEL is not set" in info.value.reason


def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TranslationModelUnavailable, match="does not exist"):
        resolve_translation_model(ResolveOptions(model=str(tmp_path / "nope")))


def test_a_file_is_not_a_model(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(TranslationModelUnavailable, match="not a model directory"):
        resolve_translation_model(ResolveOptions(model=str(file)))


def test_directory_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TranslationModelUnavailable, match="no CTranslate2 model"):
        resolve_translation_model(ResolveOptions(model=str(tmp_path)))


def test_local_directories_resolve_with_their_kind(tiny_nllb_dir: Path, tiny_opus_root: Path) -> None:
    nllb = resolve_translation_model(ResolveOptions(model=str(tiny_nllb_dir)))
    assert (nllb.kind, nllb.origin) == ("nllb", "directory")
    assert nllb.tokenizer_file == tiny_nllb_dir / "sentencepiece.bpe.model"
    opus = resolve_translation_model(ResolveOptions(model=str(tiny_opus_root)))
    assert (opus.kind, opus.origin, opus.tokenizer_file) == ("opus-mt", "directory", None)


def test_hub_id_offline_is_unavailable_in_one_line() -> None:
    hub = Hub()
    with pytest.raises(TranslationModelUnavailable) as info:
        resolve_translation_model(ResolveOptions(model="someone/nllb-ct2"), downloader=hub)
    reason = info.value.reason
    assert "\n" not in reason
    assert "'someone/nllb-ct2'" in reason and "offline" in reason
    assert hub.calls == [("someone/nllb-ct2", True), ("someone/nllb-ct2", False)]


def test_hub_id_with_downloads_off_never_goes_online() -> None:
    hub = Hub()
    with pytest.raises(TranslationModelUnavailable, match="downloads are off"):
        resolve_translation_model(
            ResolveOptions(model="someone/nllb-ct2", allow_download=False), downloader=hub
        )
    assert hub.calls == [("someone/nllb-ct2", True)]


def test_hub_id_with_the_real_client_offline_is_unavailable(tmp_path: Path) -> None:
    # local_files_only: the real huggingface_hub client, no network involved.
    with pytest.raises(TranslationModelUnavailable, match="not cached"):
        resolve_translation_model(
            ResolveOptions(model="someone/not-a-model", cache_dir=tmp_path, allow_download=False)
        )


def test_hub_id_from_cache_then_download(tiny_nllb_dir: Path) -> None:
    cached = resolve_translation_model(
        ResolveOptions(model="someone/nllb-ct2"), downloader=Hub(cached={"someone/nllb-ct2": tiny_nllb_dir})
    )
    assert (cached.path, cached.kind, cached.origin) == (tiny_nllb_dir, "nllb", "hub-cache")
    downloaded = resolve_translation_model(
        ResolveOptions(model="someone/nllb-ct2"), downloader=Hub(online={"someone/nllb-ct2": tiny_nllb_dir})
    )
    assert downloaded.origin == "download"


def test_nllb_without_tokenizer_fetches_the_default_one(tiny_nllb_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny_nllb_dir, bare)
    (bare / "sentencepiece.bpe.model").unlink()
    tokenizer_repo = tmp_path / "tok"
    tokenizer_repo.mkdir()
    shutil.copy(tiny_nllb_dir / "sentencepiece.bpe.model", tokenizer_repo)

    resolved = resolve_translation_model(
        ResolveOptions(model=str(bare)), downloader=Hub(cached={DEFAULT_NLLB_TOKENIZER_REPO: tokenizer_repo})
    )
    assert resolved.tokenizer_file == tokenizer_repo / "sentencepiece.bpe.model"

    explicit = resolve_translation_model(
        ResolveOptions(model=str(bare), tokenizer=str(tokenizer_repo / "sentencepiece.bpe.model"))
    )
    assert explicit.tokenizer_file == tokenizer_repo / "sentencepiece.bpe.model"

    with pytest.raises(TranslationModelUnavailable, match=DEFAULT_NLLB_TOKENIZER_REPO):
        resolve_translation_model(ResolveOptions(model=str(bare)), downloader=Hub())
