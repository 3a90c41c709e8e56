"""The translation model's life cycle: load once on demand, unload after
``TRANSLATION_IDLE_UNLOAD_SECONDS`` idle (then ``gc.collect()``), reload when needed, and say
whether translation is available and why not.

Pure synchronous code with an injectable clock: the worker's async shell calls
:meth:`TranslationManager.translate` through ``asyncio.to_thread`` and
:meth:`TranslationManager.maybe_unload` every few seconds. The opus-mt pair LRU
(``TRANSLATION_MAX_LOADED_PAIRS``) lives in :class:`~translation_worker.engines.OpusMtEngine`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.memdebug import rss_bytes
from translation_worker.engines import (
    EasyNMTEngine,
    EasyNmtNotInstalled,
    EngineOptions,
    TranslationEngine,
    TranslationItem,
    group_by_pair,
    load_ctranslate2_engine,
)
from translation_worker.languages import UNSUPPORTED_LANGUAGE_PAIR, UnsupportedLanguagePair
from translation_worker.models import (
    TRANSLATION_UNAVAILABLE,
    ResolveOptions,
    TranslationModelUnavailable,
    resolve_translation_model,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
EngineFactory = Callable[["ManagerOptions"], TranslationEngine]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """``auto`` -> ``float16`` on CUDA, ``int8`` on CPU (the lead's COMPUTE_TYPE convention)."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


@dataclass(frozen=True, slots=True)
class ManagerOptions:
    """Everything the manager needs; :meth:`from_settings` builds it from TranslationSettings."""

    model: str = ""
    engine: Literal["ctranslate2", "easynmt"] = "ctranslate2"
    easynmt_model: str = "opus-mt"
    tokenizer: str = ""
    cache_dir: Path | None = None
    allow_download: bool = True
    engine_options: EngineOptions = field(default_factory=EngineOptions)
    idle_unload_seconds: float = 300.0
    #: After a failed resolution, how long before the next request tries again.
    retry_unavailable_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> ManagerOptions:
        """From a ``common.settings.TranslationSettings`` (read by attribute, so optional
        fields the lead has not added yet fall back to the defaults here)."""
        device = resolve_device(str(getattr(settings, "device", "auto")))
        cache = getattr(settings, "model_cache_dir", None)
        engine_options = EngineOptions(
            device=device,
            compute_type=resolve_compute_type(str(getattr(settings, "compute_type", "auto")), device),
            cpu_threads=int(getattr(settings, "cpu_threads", 0)),
            beam_size=int(getattr(settings, "translation_beam_size", 2)),
            max_decoding_length=int(getattr(settings, "translation_max_decoding_length", 256)),
            max_batch_size=int(getattr(settings, "max_batch_size", 0)),
            max_loaded_pairs=int(getattr(settings, "translation_max_loaded_pairs", 4)),
        )
        return cls(
            model=str(getattr(settings, "translation_model", "")),
            engine=getattr(settings, "translation_engine", "ctranslate2"),
            easynmt_model=str(getattr(settings, "easynmt_model", "opus-mt")),
            tokenizer=str(getattr(settings, "translation_tokenizer", "") or ""),
            cache_dir=Path(cache) / "hub" if cache else None,
            allow_download=bool(getattr(settings, "translation_allow_download", True)),
            engine_options=engine_options,
            idle_unload_seconds=float(getattr(settings, "translation_idle_unload_seconds", 300.0)),
        )


@dataclass(frozen=True, slots=True)
class TranslationOutcome:
    """The result for one item: ``text``, or an error ``code`` for the client."""

    text: str | None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True, slots=True)
class ManagerStatus:
    """For ``/health`` details and ``/ready``: ``ok`` False means degraded, with ``reason``."""

    ok: bool
    reason: str | None
    loaded: bool
    kind: str | None
    model_path: str | None
    loads: int
    unloads: int
    loaded_pairs: list[str]


def default_engine_factory(options: ManagerOptions) -> TranslationEngine:
    """Resolve and load the configured engine; raises TranslationModelUnavailable."""
    if options.engine == "easynmt":
        try:
            return EasyNMTEngine(options.easynmt_model, device=options.engine_options.device)
        except EasyNmtNotInstalled as exc:
            raise TranslationModelUnavailable(str(exc)) from exc
    resolved = resolve_translation_model(
        ResolveOptions(
            model=options.model,
            cache_dir=options.cache_dir,
            allow_download=options.allow_download,
            tokenizer=options.tokenizer,
        )
    )
    try:
        return load_ctranslate2_engine(
            resolved.path, options.engine_options, kind=resolved.kind, tokenizer_file=resolved.tokenizer_file
        )
    except (OSError, ValueError, RuntimeError) as exc:
        # A corrupt or incompatible model: degrade with the reason rather than crash-loop.
        log.exception("loading translation model %s failed", resolved.path)
        raise TranslationModelUnavailable(f"cannot load translation model at {resolved.path}: {exc}") from exc


class TranslationManager:
    """Owns the engine: lazy load, idle unload, availability, per-item outcomes.

    Thread-safe: translations may run in worker threads while the shell calls
    :meth:`maybe_unload`; an engine is never unloaded under a running translation.
    """

    def __init__(
        self,
        options: ManagerOptions,
        *,
        clock: Clock = time.monotonic,
        engine_factory: EngineFactory = default_engine_factory,
    ) -> None:
        self.options = options
        self._clock = clock
        self._factory = engine_factory
        self._lock = threading.Lock()
        self._engine: TranslationEngine | None = None
        self._active = 0
        self._last_used = clock()
        self._failure: str | None = None
        self._failed_at: float | None = None
        self.loads = 0
        self.unloads = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._engine is not None

    def status(self) -> tuple[bool, str | None]:
        """(ok, reason): False with a one-line reason when translation is unavailable."""
        failure = self._failure
        return failure is None, failure

    def details(self) -> ManagerStatus:
        engine = self._engine
        pairs = getattr(engine, "loaded_pairs", []) if engine is not None else []
        location = getattr(engine, "model_dir", None) or getattr(engine, "root", None)
        return ManagerStatus(
            ok=self._failure is None,
            reason=self._failure,
            loaded=engine is not None,
            kind=getattr(engine, "kind", None),
            model_path=str(location) if location is not None else None,
            loads=self.loads,
            unloads=self.unloads,
            loaded_pairs=[f"{s}-{t}" for s, t in pairs],
        )

    # -- loading -------------------------------------------------------------------------

    def _load_locked(self) -> TranslationEngine:
        now = self._clock()
        if (
            self._failure is not None
            and self._failed_at is not None
            and now - self._failed_at < self.options.retry_unavailable_seconds
        ):
            raise TranslationModelUnavailable(self._failure)
        started = time.perf_counter()
        try:
            engine = self._factory(self.options)
        except TranslationModelUnavailable as exc:
            if exc.reason != self._failure:
                log.warning("translation unavailable: %s", exc.reason)
            self._failure, self._failed_at = exc.reason, now
            raise
        self._failure = self._failed_at = None
        self._engine = engine
        self._last_used = self._clock()
        self.loads += 1
        log.info(
            "translation engine %s loaded in %.2fs (rss %.0f MB)",
            engine.kind,
            time.perf_counter() - started,
            rss_bytes() / 1e6,
        )
        return engine

    def ensure_loaded(self) -> TranslationEngine:
        """The engine, loading it if needed (blocking); raises TranslationModelUnavailable."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            return self._load_locked()

    def preload(self) -> bool:
        """Load at start so /ready and /health are right at once; False when unavailable."""
        try:
            self.ensure_loaded()
        except TranslationModelUnavailable:
            return False
        return True

    # -- translating ---------------------------------------------------------------------

    def _acquire(self) -> TranslationEngine:
        with self._lock:
            engine = self._engine if self._engine is not None else self._load_locked()
            self._active += 1
            return engine

    def _release(self) -> None:
        with self._lock:
            self._active -= 1
            self._last_used = self._clock()

    def translate_batch(self, items: Sequence[TranslationItem]) -> list[str]:
        """All-or-nothing: raises TranslationModelUnavailable or UnsupportedLanguagePair."""
        engine = self._acquire()
        try:
            return engine.translate_batch(items)
        finally:
            self._release()

    def translate(self, items: Sequence[TranslationItem]) -> list[TranslationOutcome]:
        """One outcome per item, in order: a bad pair or a missing model fails only the items
        it concerns, never the batch. One engine call per (source, target) group."""
        outcomes: list[TranslationOutcome | None] = [None] * len(items)
        needs_model: list[int] = []
        for index, item in enumerate(items):
            try:
                if group_by_pair([item]):
                    needs_model.append(index)
                else:
                    outcomes[index] = TranslationOutcome(item.text if item.text.strip() else "")
            except UnsupportedLanguagePair as exc:
                outcomes[index] = _unsupported(exc)
        if needs_model:
            try:
                engine = self._acquire()
            except TranslationModelUnavailable as exc:
                for index in needs_model:
                    outcomes[index] = TranslationOutcome(None, TRANSLATION_UNAVAILABLE, exc.reason)
            else:
                try:
                    self._translate_groups(engine, items, needs_model, outcomes)
                finally:
                    self._release()
        return [
            o if o is not None else TranslationOutcome(None, TRANSLATION_UNAVAILABLE, "no result")
            for o in outcomes
        ]

    @staticmethod
    def _translate_groups(
        engine: TranslationEngine,
        items: Sequence[TranslationItem],
        indices: list[int],
        outcomes: list[TranslationOutcome | None],
    ) -> None:
        subset = [items[i] for i in indices]
        for group in group_by_pair(subset).values():
            group_items = [subset[i] for i in group]
            targets = [indices[i] for i in group]
            src, tgt = group_items[0].source_language, group_items[0].target_language
            if not engine.supports(src, tgt):
                for index in targets:
                    outcomes[index] = _unsupported(
                        UnsupportedLanguagePair(src, tgt, f"not served by {engine.kind}")
                    )
                continue
            try:
                texts = engine.translate_batch(group_items)
            except UnsupportedLanguagePair as exc:
                for index in targets:
                    outcomes[index] = _unsupported(exc)
                continue
            for index, text in zip(targets, texts, strict=True):
                outcomes[index] = TranslationOutcome(text)

    def supports(self, source: str | None, target: str | None) -> bool | None:
        """Whether the loaded engine serves the pair; None when no engine is loaded."""
        engine = self._engine
        return None if engine is None else engine.supports(source, target)

    # -- unloading -----------------------------------------------------------------------

    def maybe_unload(self, now: float | None = None) -> bool:
        """Unload when idle for ``idle_unload_seconds``; True when it did. Never blocks: a
        busy manager (loading or translating) is not idle."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._engine is None or self._active > 0:
                return False
            now = self._clock() if now is None else now
            idle = now - self._last_used
            if idle < self.options.idle_unload_seconds:
                return False
            self._unload_locked(f"idle for {idle:.0f}s")
            return True
        finally:
            self._lock.release()

    def unload(self, reason: str = "requested") -> None:
        """Unload now (shutdown, tests); waits for the lock."""
        with self._lock:
            if self._engine is not None:
                self._unload_locked(reason)

    def _unload_locked(self, reason: str) -> None:
        engine, self._engine = self._engine, None
        before = rss_bytes()
        if engine is not None:
            engine.close()
        del engine
        # CTranslate2 frees its buffers when the translator goes; collect so Python-side
        # references (tokenizers, results) go now rather than at the next GC cycle.
        gc.collect()
        self.unloads += 1
        log.info(
            "translation model unloaded (%s); rss %.0f MB -> %.0f MB",
            reason,
            before / 1e6,
            rss_bytes() / 1e6,
        )


def _unsupported(exc: UnsupportedLanguagePair) -> TranslationOutcome:
    return TranslationOutcome(None, UNSUPPORTED_LANGUAGE_PAIR, str(exc))


class SessionNotices:
    """Remembers which sessions already got a one-time error (``translation_unavailable``),
    bounded so a long-running worker does not grow without limit."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max = max_sessions
        self._lock = threading.Lock()

    def first_time(self, session_id: str, code: str = TRANSLATION_UNAVAILABLE) -> bool:
        """True the first time (session, code) is seen; False afterwards."""
        key = (session_id, code)
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return True
