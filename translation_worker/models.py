"""Where the translation model comes from: ``TRANSLATION_MODEL`` is a local directory, or the
hub id of a CTranslate2 model (downloaded once into the cache when online).

Nothing here needs the network to *fail*: offline with no model, resolution raises
:class:`TranslationModelUnavailable` with a one-line reason, and the worker stays up in a
degraded state instead of crashing (DESIGN.md section 5).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from translation_worker.engines import ModelKind, UnknownModelLayout, detect_model_kind
from translation_worker.engines.nllb import NLLB_TOKENIZER_FILES
from translation_worker.engines.subword import find_tokenizer_file

log = logging.getLogger(__name__)

#: Stable error code sent (once per session) when no translation model can be had.
TRANSLATION_UNAVAILABLE = "translation_unavailable"

#: Where the NLLB SentencePiece model is fetched from when a converted model ships none.
DEFAULT_NLLB_TOKENIZER_REPO = "facebook/nllb-200-distilled-600M"

#: Files a converted CTranslate2 model needs; nothing else of a repository is downloaded.
CT2_ALLOW_PATTERNS = (
    "model.bin",
    "config.json",
    "*vocabulary*",
    "vmap.txt",
    "*.spm",
    "sentencepiece.bpe.model",
    "tokenizer.json",
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

Origin = Literal["directory", "hub-cache", "download"]
Downloader = Callable[..., str]


class TranslationModelUnavailable(RuntimeError):
    """No usable translation model; ``reason`` is one line for /health and the logs."""

    code = TRANSLATION_UNAVAILABLE

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """What to resolve and how: ``model`` is ``TRANSLATION_MODEL``; ``tokenizer`` optionally
    names an NLLB tokenizer file, directory or hub id for models converted without one."""

    model: str
    cache_dir: Path | None = None
    allow_download: bool = True
    kind: ModelKind | Literal["auto"] = "auto"
    tokenizer: str = ""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model directory ready to load."""

    path: Path
    kind: ModelKind
    origin: Origin
    tokenizer_file: Path | None = None


def _default_downloader() -> Downloader:
    from huggingface_hub import snapshot_download

    return snapshot_download


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or "\\" in spec or spec.count("/") > 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _fetch(
    repo_id: str,
    options: ResolveOptions,
    downloader: Downloader,
    allow_patterns: tuple[str, ...],
) -> tuple[Path, Origin]:
    """The repository's snapshot dir: from the cache first, then (if allowed) downloaded."""
    cache_dir = str(options.cache_dir) if options.cache_dir else None
    kwargs: dict[str, Any] = {"cache_dir": cache_dir, "allow_patterns": list(allow_patterns)}
    try:
        return Path(downloader(repo_id, local_files_only=True, **kwargs)), "hub-cache"
    except (OSError, ValueError) as exc:
        # huggingface_hub's "not in the cache" errors are OSError/ValueError subclasses.
        log.debug("%s is not in the cache: %s", repo_id, _one_line(exc))
    if not options.allow_download:
        raise TranslationModelUnavailable(
            f"translation model {repo_id!r} is not cached and downloads are off"
        )
    try:
        log.info("downloading translation model %s", repo_id)
        return Path(downloader(repo_id, **kwargs)), "download"
    except Exception as exc:  # offline, 404, auth: all mean "unavailable", with the reason
        log.debug("download of %s failed", repo_id, exc_info=True)
        raise TranslationModelUnavailable(
            f"translation model {repo_id!r} is not cached and could not be downloaded (offline?): "
            f"{_one_line(exc)}"
        ) from exc


def _resolve_tokenizer(path: Path, options: ResolveOptions, downloader: Downloader) -> Path:
    """The NLLB tokenizer file: in the model dir, TRANSLATION_TOKENIZER, or the default repo."""
    if options.tokenizer:
        local = Path(options.tokenizer).expanduser()
        if local.is_file():
            return local
        if local.is_dir():
            found = find_tokenizer_file(local, NLLB_TOKENIZER_FILES)
            if found is None:
                raise TranslationModelUnavailable(
                    f"TRANSLATION_TOKENIZER directory {local} has no tokenizer file"
                )
            return found
        repo = options.tokenizer
    else:
        found = find_tokenizer_file(path, NLLB_TOKENIZER_FILES)
        if found is not None:
            return found
        repo = DEFAULT_NLLB_TOKENIZER_REPO
    snapshot, _ = _fetch(repo, options, downloader, NLLB_TOKENIZER_FILES)
    found = find_tokenizer_file(snapshot, NLLB_TOKENIZER_FILES)
    if found is None:
        raise TranslationModelUnavailable(f"no NLLB tokenizer file in {repo!r} for the model at {path}")
    return found


def resolve_translation_model(options: ResolveOptions, downloader: Downloader | None = None) -> ResolvedModel:
    """Find the model directory and its kind; raise TranslationModelUnavailable with the reason.

    Blocking (a download can take minutes): call it from a thread.
    """
    spec = options.model.strip()
    if not spec:
        raise TranslationModelUnavailable(
            "TRANSLATION_MODEL is not set: point it at a CTranslate2 NLLB-200 or opus-mt model directory"
        )
    local = Path(spec).expanduser()
    origin: Origin
    if local.is_dir():
        path, origin = local, "directory"
    elif local.exists():
        raise TranslationModelUnavailable(f"TRANSLATION_MODEL {spec!r} is a file, not a model directory")
    elif _looks_like_path(spec) or not _HUB_ID.match(spec):
        raise TranslationModelUnavailable(f"TRANSLATION_MODEL directory {spec!r} does not exist")
    else:
        path, origin = _fetch(spec, options, downloader or _default_downloader(), CT2_ALLOW_PATTERNS)
    try:
        kind: ModelKind = detect_model_kind(path) if options.kind == "auto" else options.kind
    except (UnknownModelLayout, OSError) as exc:
        raise TranslationModelUnavailable(f"TRANSLATION_MODEL {spec!r}: {exc}") from exc
    tokenizer_file = None
    if kind == "nllb":
        tokenizer_file = _resolve_tokenizer(path, options, downloader or _default_downloader())
    log.info("translation model %s resolved to %s (%s, %s)", spec, path, kind, origin)
    return ResolvedModel(path=path, kind=kind, origin=origin, tokenizer_file=tokenizer_file)
