"""Detection accuracy per language on the STT fixtures: unrestricted against restricted sets.

For every fixture in ``tests/fixtures/stt`` (``references.json``: clearly decided material;
``detection_traps.json``: espeak-ng sentences base mistakes for Thai, Japanese or Latin) it
ranks the languages once per encoder window, the 30 s window of faster-whisper's
``transcribe`` (after its VAD) and the dynamic window of the worker's batched path, and
applies :func:`stt_worker.detection.choose_language` with each set: none (Whisper's 99), the
default ``SOURCE_LANGUAGES`` (20), and a session narrowed to es, fr, de, it, pt.

    python -m benchmarks.language_detection [--model base]

Figures depend on the CPU's kernels (see ``benchmarks/ct2_isa.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np

from common.languages import DEFAULT_SOURCE_LANGUAGES
from stt_worker.detection import choose_language

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "stt"
SETS: dict[str, frozenset[str]] = {
    "all": frozenset(),
    "default20": frozenset(DEFAULT_SOURCE_LANGUAGES),
    "es,fr,de,it,pt": frozenset({"es", "fr", "de", "it", "pt"}),
}


def _audio(name: str) -> np.ndarray:
    with wave.open(str(FIXTURES / f"{name}.wav"), "rb") as fh:
        return np.frombuffer(fh.readframes(fh.getnframes()), "<i2").astype(np.float32) / 32768.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    args = parser.parse_args(argv)
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.vad import VadOptions

    from stt_worker.engine import WINDOW_MARGIN_FRAMES, encoder_frames
    from stt_worker.models import resolve_model

    refs: dict[str, dict[str, str]] = {}
    for source in ("references.json", "detection_traps.json"):
        refs.update(json.loads((FIXTURES / source).read_text(encoding="utf-8")))
    with tempfile.TemporaryDirectory() as cache:
        path = resolve_model(args.model, Path(cache)).path_or_name
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2, local_files_only=True)
        hits: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
        print(f"{'fixture':<20} {'window':<8} " + " ".join(f"{s:<18}" for s in SETS))
        for name, ref in sorted(refs.items()):
            audio = _audio(name)
            _, _, ranking30 = model.detect_language(audio=audio, vad_filter=True, vad_parameters=VadOptions())
            feats = model.feature_extractor(audio)
            frames = encoder_frames(feats.shape[-1], "dynamic")
            assert frames >= min(feats.shape[-1] + WINDOW_MARGIN_FRAMES, 3000)
            output = model.model.detect_language(model.encode(pad_or_trim(feats, frames)))[0]
            ranking_dyn = [(token[2:-2], p) for token, p in output]
            for window, ranking in (("30s", ranking30), ("dynamic", ranking_dyn)):
                cells = []
                for set_name, allowed in SETS.items():
                    d = choose_language(ranking, allowed)
                    hits[(ref["language"], window, set_name)].append(d.language == ref["language"])
                    cells.append(f"{d.language} {d.probability:.2f}{'' if d.language == ref['language'] else ' x'}")
                print(f"{name:<20} {window:<8} " + " ".join(f"{c:<18}" for c in cells), flush=True)
    print("\naccuracy (correct / fixtures) per language and window:")
    print(f"{'language':<9} {'window':<8} " + " ".join(f"{s:<16}" for s in SETS))
    for lang in sorted({k[0] for k in hits}):
        for window in ("30s", "dynamic"):
            cells = [f"{sum(hits[(lang, window, s)])}/{len(hits[(lang, window, s)])}" for s in SETS]
            print(f"{lang:<9} {window:<8} " + " ".join(f"{c:<16}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
