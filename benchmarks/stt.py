"""Benchmark the STT engine: real-time factor and latency, sequential against batched.

    python -m benchmarks.stt [--models tiny.en base] [--threads 1 2] [--batch-size 4]

For each model and thread count it loads one engine, warms it up, then transcribes the
fixture utterances (English only for ``.en`` models) as a burst that arrived at once:

* ``seq``: one :meth:`WhisperEngine.transcribe` call after another (faster-whisper's own
  ``transcribe``: it encodes the audio twice when it detects the language); an
  utterance's latency is the time until its own result (it waits for the ones before it);
* ``one``: the project's single-encode path one utterance at a time
  (``transcribe_batch([req], batched=True)``): separates that gain from batching's;
* ``batch``: :meth:`WhisperEngine.transcribe_batch` in groups of ``--batch-size``; every
  member of a group gets its result when the group finishes.

for finals (beam search, VAD filter) and partials (greedy).  RTF is processing time over
audio duration (below 1 is faster than real time).  The CPU may be shared with other
processes: the load average is printed with the table so figures can be judged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stt_worker.engine import EngineOptions, TranscribeRequest, WhisperEngine
from stt_worker.models import ModelUnavailableError, resolve_model

log = logging.getLogger(__name__)

DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stt"


@dataclass(frozen=True)
class BenchConfig:
    """What to measure."""

    models: tuple[str, ...] = ("tiny.en", "base")
    threads: tuple[int, ...] = (1, 2)
    batch_size: int = 4
    fixtures: Path = DEFAULT_FIXTURES
    cache_dir: Path = Path.home() / ".cache" / "speech-pipeline"
    kinds: tuple[str, ...] = ("final", "partial")


@dataclass(frozen=True)
class BenchRow:
    """One line of the result table."""

    model: str
    threads: int
    mode: str  # seq | batch
    kind: str  # final | partial
    utterances: int
    audio_seconds: float
    wall_seconds: float
    latencies: tuple[float, ...]

    @property
    def rtf(self) -> float:
        """Processing time over audio time."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0


def load_fixtures(directory: Path, english_only: bool) -> list[tuple[str, np.ndarray]]:
    """The fixture WAVs (16 kHz mono) as float32 arrays, by name."""
    refs = json.loads((directory / "references.json").read_text(encoding="utf-8"))
    out = []
    for name in sorted(refs):
        if english_only and refs[name]["language"] != "en":
            continue
        with wave.open(str(directory / f"{name}.wav"), "rb") as fh:
            pcm = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2")
        out.append((name, pcm.astype(np.float32) / 32768.0))
    return out


def _measure_seq(engine: WhisperEngine, reqs: Sequence[TranscribeRequest]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    latencies = []
    for req in reqs:
        engine.transcribe(req)
        latencies.append(time.perf_counter() - started)
    return time.perf_counter() - started, latencies


def _measure_one(engine: WhisperEngine, reqs: Sequence[TranscribeRequest]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    latencies = []
    for req in reqs:
        engine.transcribe_batch([req], batched=True)
        latencies.append(time.perf_counter() - started)
    return time.perf_counter() - started, latencies


def _measure_batch(
    engine: WhisperEngine, reqs: Sequence[TranscribeRequest], batch_size: int
) -> tuple[float, list[float]]:
    started = time.perf_counter()
    latencies: list[float] = []
    for i in range(0, len(reqs), batch_size):
        group = reqs[i : i + batch_size]
        engine.transcribe_batch(group, batched=True)
        latencies.extend([time.perf_counter() - started] * len(group))
    return time.perf_counter() - started, latencies


def run_benchmark(config: BenchConfig) -> list[BenchRow]:
    """Measure every (model, threads, kind, mode) combination; see the module docstring."""
    rows: list[BenchRow] = []
    for model in config.models:
        resolved = resolve_model(model, config.cache_dir)
        for threads in config.threads:
            engine = WhisperEngine(EngineOptions(model=resolved.path_or_name, cpu_threads=threads))
            utterances = load_fixtures(config.fixtures, english_only=not engine.multilingual)
            audio_seconds = sum(a.size for _, a in utterances) / 16000
            engine.transcribe(TranscribeRequest(utterances[0][1]))  # warm-up
            for kind in config.kinds:
                reqs = [TranscribeRequest(a, partial=kind == "partial") for _, a in utterances]
                for mode in ("seq", "one", "batch"):
                    if mode == "seq":
                        wall, lat = _measure_seq(engine, reqs)
                    elif mode == "one":
                        wall, lat = _measure_one(engine, reqs)
                    else:
                        wall, lat = _measure_batch(engine, reqs, config.batch_size)
                    row = BenchRow(model, threads, mode, kind, len(reqs), audio_seconds, wall, tuple(lat))
                    log.info("%s", format_row(row))
                    rows.append(row)
    return rows


HEADER = (
    f"{'model':<8} {'thr':>3} {'kind':<7} {'mode':<5} {'n':>2} {'audio s':>7} "
    f"{'wall s':>7} {'RTF':>6} {'lat mean':>8} {'lat p50':>7} {'lat max':>7}"
)


def format_row(row: BenchRow) -> str:
    """One aligned table line."""
    lat = row.latencies
    return (
        f"{row.model:<8} {row.threads:>3} {row.kind:<7} {row.mode:<5} {row.utterances:>2} "
        f"{row.audio_seconds:>7.1f} {row.wall_seconds:>7.2f} {row.rtf:>6.3f} "
        f"{statistics.fmean(lat):>8.2f} {statistics.median(lat):>7.2f} {max(lat):>7.2f}"
    )


def format_table(rows: Sequence[BenchRow]) -> str:
    """The whole table, with the machine's load so shared-CPU figures can be judged."""
    load = os.getloadavg()
    lines = [
        f"cpus={os.cpu_count()} loadavg={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} "
        "(latency = time from the burst's start until that utterance's result)",
        HEADER,
        *(format_row(r) for r in rows),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """Command-line options to a :class:`BenchConfig`."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.stt", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(BenchConfig.models))
    p.add_argument("--threads", nargs="+", type=int, default=list(BenchConfig.threads))
    p.add_argument("--batch-size", type=int, default=BenchConfig.batch_size)
    p.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    p.add_argument("--cache-dir", type=Path, default=BenchConfig.cache_dir)
    p.add_argument("--kinds", nargs="+", choices=["final", "partial"], default=list(BenchConfig.kinds))
    a = p.parse_args(argv)
    return BenchConfig(
        models=tuple(a.models),
        threads=tuple(a.threads),
        batch_size=a.batch_size,
        fixtures=a.fixtures,
        cache_dir=a.cache_dir,
        kinds=tuple(a.kinds),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    config = parse_args(argv)
    try:
        rows = run_benchmark(config)
    except ModelUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
