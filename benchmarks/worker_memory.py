"""Benchmark: an STT engine's resident memory over many batches, and what trimming does to it.

Batches like the worker's (1-8 jobs, 0.5-15 s of conversational audio each, partials and
finals, some with word times; a fixed seed) run through the real engine in this process.
Every 25 batches it prints RSS and the time so far; at the end, what ``malloc_trim`` would
still give back. ``--trim`` picks the policy (``common.memtrim``): ``never``; ``each``
(after every batch); ``soft`` (above ``--soft-limit-mb``, at most every 10 s, as the worker
does under load). Run the policies one after another on a quiet machine and compare.

    python -m benchmarks.worker_memory [--model tiny.en] [--batches 100] [--trim never|each|soft]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.memdebug import malloc_trim, rss_bytes
from common.memtrim import TrimPolicy, TrimSchedule, release_free_heap
from demos.audio_tools import read_wav_pcm16
from demos.conversation import DEFAULT_OUT
from demos.manifest import load_manifest
from stt_worker.engine import EngineOptions, TranscribeRequest, WhisperEngine
from stt_worker.models import resolve_model

MB = 2**20


def load_clips() -> list[np.ndarray]:
    """The conversational clips, built on demand (a clean checkout has none), as float32.

    Built in a child process: synthesis loads TTS models, and this process's RSS must be the
    engine's alone."""
    subprocess.run([sys.executable, "-m", "demos.conversation", "--out", str(DEFAULT_OUT)], check=True)
    manifest = load_manifest(DEFAULT_OUT)
    clips = []
    for name in sorted(manifest.clips):
        pcm, _rate = read_wav_pcm16((DEFAULT_OUT / f"{name}.wav").read_bytes())
        clips.append(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
    return clips


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--trim", choices=["never", "each", "soft"], default="never")
    parser.add_argument("--soft-limit-mb", type=int, default=400)
    args = parser.parse_args(argv)
    engine = WhisperEngine(EngineOptions(model=resolve_model(args.model, Path(tempfile.mkdtemp())).path_or_name,
                                         cpu_threads=2))
    clips, rng = load_clips(), random.Random(1)
    schedule = TrimSchedule(TrimPolicy(idle_seconds=0, soft_limit_bytes=args.soft_limit_mb * MB))
    trims, started = 0, time.perf_counter()
    print(f"{args.model}, trim {args.trim}: start {rss_bytes() / MB:.1f} MB")
    for i in range(1, args.batches + 1):
        requests = []
        for _ in range(rng.randint(1, 8)):
            clip = rng.choice(clips)
            length = int(rng.uniform(0.5, 15) * 16000)
            at = rng.randint(0, len(clip) - length)
            requests.append(TranscribeRequest(clip[at:at + length], language="en", partial=rng.random() < 0.7,
                                              word_timestamps=rng.random() < 0.5))
        engine.transcribe_batch(requests)
        if args.trim == "each" or (args.trim == "soft" and schedule.work_ended(time.monotonic(), rss_bytes)):
            trims += release_free_heap()
        if i % 25 == 0:
            print(f"  batch {i:4d}  rss {rss_bytes() / MB:6.1f} MB  {time.perf_counter() - started:6.0f} s")
    trimmed = malloc_trim()
    print(f"  {trims} trims; malloc_trim now would give back "
          f"{(trimmed[0] - trimmed[1]) / MB if trimmed else 0:.1f} MB")


if __name__ == "__main__":
    main()
