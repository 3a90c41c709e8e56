"""The manager: lazy load, idle unload and reload on an injected clock, the unavailable path,
per-item outcomes, the opus-mt LRU through the manager, RSS, one notice per session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.tiny_translation import build_tiny_nllb_model
from translation_worker.engines import EngineOptions, TranslationEngine, TranslationItem
from translation_worker.manager import (
    ManagerOptions,
    SessionNotices,
    TranslationManager,
    default_engine_factory,
)
from translation_worker.models import TranslationModelUnavailable

ENGINE_OPTIONS = EngineOptions(max_decoding_length=8, beam_size=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager_for(model: Path | str, clock: Clock, **kwargs: object) -> TranslationManager:
    options = ManagerOptions(model=str(model), engine_options=ENGINE_OPTIONS, allow_download=False, **kwargs)  # type: ignore[arg-type]
    return TranslationManager(options, clock=clock)


def test_loads_once_unloads_when_idle_and_reloads_on_demand(
    tiny_nllb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    collections: list[int] = []
    real_collect = gc.collect

    def counting_collect(*args: int) -> int:
        collections.append(1)
        return real_collect(*args)

    monkeypatch.setattr(gc, "collect", counting_collect)
    clock = Clock()
    manager = manager_for(tiny_nllb_dir, clock, idle_unload_seconds=60)
    assert not manager.is_loaded
    assert manager.preload()
    assert manager.status() == (True, None)
    item = TranslationItem("Hello there", "en", "es")
    first = manager.translate_batch([item])
    manager.translate_batch([item])
    assert manager.loads == 1

    clock.now += 59
    assert not manager.maybe_unload()
    clock.now += 2
    assert manager.maybe_unload()
    assert not manager.is_loaded and manager.unloads == 1
    assert collections  # garbage collected after unloading
    assert manager.status() == (True, None)  # unloaded is not unavailable
    assert not manager.maybe_unload()

    assert manager.translate_batch([item]) == first  # reloaded, same model, same output
    assert (manager.loads, manager.is_loaded) == (2, True)
    # Use resets the idle timer.
    clock.now += 30
    manager.translate_batch([item])
    clock.now += 40
    assert not manager.maybe_unload()
    assert manager.maybe_unload(now=clock.now + 21)


def test_never_unloads_under_a_running_translation(tiny_nllb_dir: Path) -> None:
    clock = Clock()
    manager = manager_for(tiny_nllb_dir, clock, idle_unload_seconds=1)
    attempts: list[bool] = []

    class Probe:
        """Wraps the real engine; asks the manager to unload mid-translation."""

        def __init__(self, real: TranslationEngine) -> None:
            self.real = real
            self.kind = real.kind

        def supports(self, source: str | None, target: str | None) -> bool:
            return self.real.supports(source, target)

        def translate_batch(self, items: Sequence[TranslationItem]) -> list[str]:
            clock.now += 100
            attempts.append(manager.maybe_unload())
            return self.real.translate_batch(items)

        def close(self) -> None:
            self.real.close()

    manager._factory = lambda options: Probe(default_engine_factory(options))
    manager.translate_batch([TranslationItem("Hello", "en", "es")])
    assert attempts == [False]
    assert manager.is_loaded


def test_unavailable_model_degrades_and_keeps_passing_through(tmp_path: Path) -> None:
    clock = Clock()
    manager = manager_for("", clock)
    assert not manager.preload()
    ok, reason = manager.status()
    assert not ok and reason is not None and "TRANSLATION_MODEL" in reason
    assert manager.details().ok is False

    outcomes = manager.translate(
        [
            TranslationItem("Hello", "en", "es"),
            TranslationItem("Same language", "en", "en"),
            TranslationItem("Hola", "es", "en"),
        ]
    )
    assert [o.error_code for o in outcomes] == ["translation_unavailable", None, "translation_unavailable"]
    assert outcomes[1].text == "Same language"
    with pytest.raises(TranslationModelUnavailable):
        manager.translate_batch([TranslationItem("Hello", "en", "es")])


def test_recovers_when_the_model_appears_after_the_retry_delay(tmp_path: Path) -> None:
    clock = Clock()
    model_dir = tmp_path / "late-model"
    manager = manager_for(model_dir, clock, retry_unavailable_seconds=30)
    assert not manager.preload()
    build_tiny_nllb_model(model_dir)
    assert not manager.translate([TranslationItem("Hello", "en", "es")])[0].ok  # within the delay
    clock.now += 31
    outcome = manager.translate([TranslationItem("Hello", "en", "es")])[0]
    assert outcome.ok and isinstance(outcome.text, str)
    assert manager.status() == (True, None)


def test_unsupported_pair_fails_only_its_items(tiny_nllb_dir: Path) -> None:
    manager = manager_for(tiny_nllb_dir, Clock())
    outcomes = manager.translate(
        [
            TranslationItem("Hello", "en", "es"),
            TranslationItem("Hello", "en", "ja"),  # not in the tiny model
            TranslationItem("Hello", "en", "xx"),  # not a language
            TranslationItem("Hello", None, "es"),  # no source language
            TranslationItem("Bonjour", "fr", "de"),
        ]
    )
    assert [o.error_code for o in outcomes] == [
        None,
        "unsupported_language_pair",
        "unsupported_language_pair",
        "unsupported_language_pair",
        None,
    ]
    assert all(isinstance(o.text, str) for o in outcomes if o.ok)
    assert outcomes[1].error_message and "'ja'" in outcomes[1].error_message
    assert manager.supports("en", "es") is True


def test_opus_mt_lru_through_the_manager(tiny_opus_root: Path) -> None:
    options = ManagerOptions(
        model=str(tiny_opus_root),
        engine_options=EngineOptions(max_decoding_length=8, max_loaded_pairs=1),
        allow_download=False,
    )
    manager = TranslationManager(options, clock=Clock())
    manager.translate([TranslationItem("Hello", "en", "es")])
    manager.translate([TranslationItem("Hola", "es", "en")])
    details = manager.details()
    assert details.kind == "opus-mt" and details.loaded_pairs == ["es-en"]
    manager.unload("test")
    assert manager.details().loaded is False


def test_options_from_settings() -> None:
    settings = SimpleNamespace(
        translation_model="/models/nllb",
        device="auto",
        compute_type="auto",
        cpu_threads=2,
        max_batch_size=8,
        model_cache_dir=Path("/cache"),
        translation_idle_unload_seconds=120.0,
        translation_max_loaded_pairs=3,
    )
    options = ManagerOptions.from_settings(settings)
    assert options.model == "/models/nllb"
    assert options.engine_options.device in ("cpu", "cuda")
    assert options.engine_options.compute_type in ("int8", "float16")
    assert options.engine_options.max_loaded_pairs == 3
    assert options.idle_unload_seconds == 120.0
    assert options.cache_dir == Path("/cache/hub")


def test_session_notices_once_per_session_and_bounded() -> None:
    notices = SessionNotices(max_sessions=2)
    assert notices.first_time("a")
    assert not notices.first_time("a")
    assert notices.first_time("a", code="other_code")
    assert notices.first_time("b")
    assert notices.first_time("c")  # evicts the oldest entries beyond two
    assert notices.first_time("a")


def test_options_from_the_real_settings_class(monkeypatch: pytest.MonkeyPatch) -> None:
    settings_module = pytest.importorskip("common.settings")
    monkeypatch.setenv("TRANSLATION_MODEL", "/models/opus")
    monkeypatch.setenv("TRANSLATION_MAX_LOADED_PAIRS", "2")
    monkeypatch.setenv("DEVICE", "cpu")
    options = ManagerOptions.from_settings(settings_module.TranslationSettings())
    assert options.model == "/models/opus"
    assert options.engine == "ctranslate2"
    assert (options.engine_options.device, options.engine_options.compute_type) == ("cpu", "int8")
    assert options.engine_options.max_loaded_pairs == 2
