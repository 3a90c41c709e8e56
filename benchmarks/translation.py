"""Benchmark: sentences per second, batched against one at a time.

    python -m benchmarks.translation                   # tiny random-weight NLLB model
    python -m benchmarks.translation --model DIR       # a real converted model

With no ``--model`` it builds the tiny model of :mod:`tests.tiny_translation` in a
temporary directory, so it runs offline; its figures measure the engine's overhead
(tokenizing, framing, CTranslate2 calls), not a real model's speed. Each mode runs
``--repeats`` times and the best run is reported.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.tiny_translation import CORPUS, TinyModelOptions, build_tiny_nllb_model
from translation_worker.engines import (
    CTranslate2Engine,
    EngineOptions,
    TranslationItem,
    load_ctranslate2_engine,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BenchResult:
    mode: str
    sentences: int
    calls: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else float("inf")

    @property
    def ms_per_sentence(self) -> float:
        return 1000 * self.seconds / self.sentences


def _best_time(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def run_benchmark(
    engine: CTranslate2Engine,
    items: Sequence[TranslationItem],
    batch_sizes: Sequence[int],
    repeats: int,
) -> list[BenchResult]:
    """Time one-at-a-time, then chunks of each batch size (0 = everything in one call)."""
    engine.translate_batch(items[:2])  # warm-up: first call allocates buffers
    results = [
        BenchResult(
            "one at a time",
            len(items),
            len(items),
            _best_time(lambda: [engine.translate_batch([item]) for item in items], repeats),
        )
    ]
    for size in batch_sizes:
        chunk = size or len(items)
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]

        def run_chunks(chunks: list[Sequence[TranslationItem]] = chunks) -> None:
            for c in chunks:
                engine.translate_batch(c)

        seconds = _best_time(run_chunks, repeats)
        results.append(BenchResult(f"batched x{chunk}", len(items), len(chunks), seconds))
    return results


def format_table(results: Sequence[BenchResult]) -> str:
    baseline = results[0].per_second
    header = ("mode", "sentences", "calls", "seconds", "sent/s", "ms/sent", "speed-up")
    lines = ["{:<16} {:>9} {:>6} {:>9} {:>9} {:>8} {:>8}".format(*header)]
    for r in results:
        lines.append(
            f"{r.mode:<16} {r.sentences:>9} {r.calls:>6} {r.seconds:>9.4f} {r.per_second:>9.1f} "
            f"{r.ms_per_sentence:>8.2f} {r.per_second / baseline:>7.1f}x"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="converted CTranslate2 model dir (default: tiny model)")
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="8,0", help="comma-separated; 0 = all in one call")
    parser.add_argument("--beam-size", type=int, default=2)
    parser.add_argument("--max-decoding-length", type=int, default=32)
    parser.add_argument("--compute-type", default="int8", help="CTranslate2 compute type")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 intra-op threads")
    parser.add_argument("--d-model", type=int, default=16, help="random model width")
    parser.add_argument("--ffn-dim", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1, help="encoder and decoder layers each")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--extra-vocab", type=int, default=0, help="filler vocabulary entries")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="es")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    options = EngineOptions(
        beam_size=args.beam_size,
        max_decoding_length=args.max_decoding_length,
        cpu_threads=args.threads,
        compute_type=args.compute_type,
    )
    english = [s for s in CORPUS if s.isascii()]
    items = [
        TranslationItem(english[i % len(english)], args.source, args.target) for i in range(args.sentences)
    ]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = TinyModelOptions(
            d_model=args.d_model,
            ffn_dim=args.ffn_dim,
            num_layers=args.layers,
            num_heads=args.heads,
            extra_vocab=args.extra_vocab,
        )
        model_dir = args.model or build_tiny_nllb_model(Path(tmp) / "tiny-nllb", options=tiny)
        size_kb = sum(f.stat().st_size for f in Path(model_dir).iterdir() if f.is_file()) / 1024
        engine = load_ctranslate2_engine(model_dir, options)
        results = run_benchmark(engine, items, batch_sizes, args.repeats)
        engine.close()
    what = (
        f"model {args.model}"
        if args.model
        else (
            f"random-weight NLLB-style model (d_model {args.d_model}, {args.layers}+{args.layers} layers, "
            f"ffn {args.ffn_dim}, vocab +{args.extra_vocab})"
        )
    )
    settings = (
        f"{args.compute_type}, beam {args.beam_size}, max {args.max_decoding_length} tokens, "
        f"{args.threads} thread(s)"
    )
    size = f", {size_kb:.0f} KB on disk"
    print(f"{what}; {args.source}->{args.target}, {settings}, best of {args.repeats}{size}")
    print(format_table(results))


if __name__ == "__main__":
    main()
