"""The benchmark's measuring and table code, on the tiny model with a handful of sentences."""

from __future__ import annotations

from pathlib import Path

from benchmarks.translation import format_table, run_benchmark
from translation_worker.engines import EngineOptions, TranslationItem, load_ctranslate2_engine


def test_benchmark_times_each_mode_and_prints_a_table(tiny_nllb_dir: Path) -> None:
    engine = load_ctranslate2_engine(tiny_nllb_dir, EngineOptions(max_decoding_length=8))
    items = [TranslationItem(f"Sentence number {i}", "en", "es") for i in range(5)]
    results = run_benchmark(engine, items, batch_sizes=[2, 0], repeats=1)
    assert [(r.mode, r.calls) for r in results] == [
        ("one at a time", 5),
        ("batched x2", 3),
        ("batched x5", 1),
    ]
    assert all(r.sentences == 5 and r.seconds > 0 for r in results)
    table = format_table(results).splitlines()
    assert table[0].split()[:2] == ["mode", "sentences"]
    assert len(table) == 4 and table[1].endswith("1.0x")
