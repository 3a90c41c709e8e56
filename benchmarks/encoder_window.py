"""ENCODER_WINDOW on a stress set: repetition loops, WER and time, ``dynamic`` against ``full``.

The stress set (issue 14) is built from the streaming fixtures (tests/fixtures/stream):

* **short**: the first 0.6-2.0 s of each sentence, as a partial job's tail would be;
* **long**: whole sentences, and the whole 13 s continuous turn;
* **silence**: each sentence followed by 1.5 s of the clip's noise (speech that ends in silence).

Each item is transcribed as a partial (greedy, words) and as a final, with the committed text
before it as the prompt, through the STT engine's batched path. Printed per window and kind:
items whose text the guards had to collapse or drop for repetition, items with a phrase still
repeated back to back, WER on the items that have a reference (long, silence), and seconds per
item. ``--material conversation`` builds the set from the conversational benchmark clips
(``demos.conversation``: two voices with short gaps in 10-20 dB noise, and a monologue) instead,
without the ``silence`` kind (what follows a sentence there is the other voice).
``--partial-floors 15,10`` also runs the dynamic window with other floors for partials (the
floor of a batch of partials, ``EngineOptions.partial_min_window_frames``).
Run: ``python -m benchmarks.encoder_window [--model tiny.en] [--threads 2] [--material
fixtures|conversation] [--partial-floors 15,10] [--jobs both|partial]``.
"""

from __future__ import annotations

import argparse
import re
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from demos.conversation import DEFAULT_OUT, ConversationOptions, build
from demos.manifest import Manifest, load_manifest
from stt_worker.engine import MIN_WINDOW_FRAMES, EngineOptions, TranscribeRequest, WhisperEngine
from stt_worker.models import resolve_model

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stream"
SR = 16000
_REPEAT = re.compile(r"\b(\w+(?:\W+\w+){1,})\W+\1\b", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    kind: str
    audio: np.ndarray
    reference: str | None
    prompt: str | None


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0


def stress_set(manifest: Manifest, directory: Path, silence: bool = True) -> list[Item]:
    items: list[Item] = []
    for clip in manifest.clips.values():
        audio = _wav(directory / clip.file)
        prompt: str | None = None
        for u in clip.utterances:
            a, b = int(u.start * SR), int(u.end * SR)
            for head in (0.6, 1.0, 1.5, 2.0):
                items.append(Item("short", audio[max(0, a - 4800) : a + int(head * SR)], None, prompt))
            items.append(Item("long", audio[max(0, a - 4800) : b + 3200], u.text, prompt))
            if silence:
                items.append(Item("silence", audio[max(0, a - 4800) : min(len(audio), b + int(1.5 * SR))], u.text,
                                  prompt))
            prompt = u.text
        if clip.name == "continuous":
            items.append(Item("long", audio, clip.reference_text, None))
    return items


def _norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


def run(model: str, threads: int, window: str, items: list[Item], floor: int = MIN_WINDOW_FRAMES,
        jobs: tuple[bool, ...] = (True, False)) -> list[str]:
    engine = WhisperEngine(EngineOptions(model=model, cpu_threads=threads, encoder_window=window, beam_size=5,
                                         partial_min_window_frames=floor))
    label = window if window == "full" or floor == MIN_WINDOW_FRAMES else f"{window}, partial floor {floor / 100:g} s"
    lines = []
    for partial in jobs:
        for kind in ("short", "long", "silence"):
            chosen = [i for i in items if i.kind == kind]
            if not chosen:
                continue
            guarded = repeated = 0
            refs: list[str] = []
            hyps: list[str] = []
            began = time.perf_counter()
            for item in chosen:
                req = TranscribeRequest(audio=item.audio, prompt=item.prompt, partial=partial, word_timestamps=partial)
                t = engine.transcribe_batch([req])[0]
                guarded += t.dropped_reason == "repetition"
                repeated += bool(_REPEAT.search(t.text))
                if item.reference is not None:
                    refs.append(_norm(item.reference))
                    hyps.append(_norm(t.text))
            seconds = (time.perf_counter() - began) / max(1, len(chosen))
            wer = f"{jiwer.wer(refs, hyps):.3f}" if refs else "-"
            lines.append(f"| {label} | {'partial' if partial else 'final'} | {kind} | {len(chosen)} | "
                         f"{guarded} | {repeated} | {wer} | {seconds:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "speech-pipeline")
    parser.add_argument("--material", choices=("fixtures", "conversation"), default="fixtures")
    parser.add_argument("--partial-floors", default="", help="seconds, comma-separated, e.g. 15,10,8")
    parser.add_argument("--jobs", choices=("both", "partial"), default="both")
    args = parser.parse_args(argv)
    model = resolve_model(args.model, args.cache_dir).path_or_name
    if args.material == "conversation":
        items = stress_set(build(ConversationOptions(out=DEFAULT_OUT)), DEFAULT_OUT, silence=False)
    else:
        items = stress_set(load_manifest(FIXTURES), FIXTURES)
    jobs = (True,) if args.jobs == "partial" else (True, False)
    print(f"model {args.model}, {args.threads} threads, {args.material}, {len(items)} items")
    print("| window | job | kind | n | repetition guarded | phrase repeated in output | WER | s/item |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    runs = [("dynamic", MIN_WINDOW_FRAMES)]
    runs += [("dynamic", round(float(f) * 100)) for f in args.partial_floors.split(",") if f.strip()]
    runs.append(("full", MIN_WINDOW_FRAMES))
    for window, floor in runs:
        for line in run(str(model), args.threads, window, items, floor, jobs):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
