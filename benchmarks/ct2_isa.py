"""How much CTranslate2's CPU kernels change the STT fixtures' results, and what they cost.

For each instruction set CTranslate2 can be pinned to (``CT2_FORCE_CPU_ISA``: GENERIC, AVX,
AVX2, AVX512) and each int8 GEMM backend (``CT2_USE_MKL=1``: Intel MKL, the default on
Intel CPUs; ``0``: oneDNN, the default elsewhere, e.g. AMD EPYC), a child process loads
``base`` and transcribes the non-English STT fixtures (``tests/fixtures/stt``) through the
engine's two paths: faster-whisper's ``transcribe`` (30 s window) and the worker's batched
path (dynamic window).  It prints, per fixture and configuration, the detected language,
its probability and the WER, then the time each configuration took.

    python -m benchmarks.ct2_isa              # every configuration the CPU supports
    python -m benchmarks.ct2_isa --isa AVX2 --isa GENERIC --mkl 0

The figures are taken on whatever else the machine is doing: compare them on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "stt"
ISAS = ("GENERIC", "AVX", "AVX2", "AVX512")


def _child() -> int:
    """Run in a child process whose environment pins the kernels; print one JSON line per fixture."""
    import jiwer

    from stt_worker.engine import EngineOptions, TranscribeRequest, WhisperEngine
    from stt_worker.models import resolve_model

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    refs = json.loads((FIXTURES / "references.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as cache:
        engine = WhisperEngine(EngineOptions(model=resolve_model("base", Path(cache)).path_or_name, cpu_threads=2))
        started = time.perf_counter()
        for name, ref in refs.items():
            if ref["language"] == "en":
                continue
            with wave.open(str(FIXTURES / f"{name}.wav"), "rb") as fh:
                audio = np.frombuffer(fh.readframes(fh.getnframes()), "<i2").astype(np.float32) / 32768.0
            seq = engine.transcribe(TranscribeRequest(audio))
            (bat,) = engine.transcribe_batch([TranscribeRequest(audio)])
            row: dict[str, object] = {"name": name, "language": ref["language"]}
            for tag, t in (("seq", seq), ("batch", bat)):
                wer = jiwer.wer(norm(ref["text"]), norm(t.text))
                row[tag] = [t.language, round(t.language_probability, 3), round(wer, 3)]
            print(json.dumps(row), flush=True)
        print(json.dumps({"elapsed": round(time.perf_counter() - started, 2)}), flush=True)
    return 0


def _run(isa: str, mkl: str) -> tuple[list[dict[str, object]], float | None, str]:
    env = {**os.environ, "CT2_FORCE_CPU_ISA": isa, "CT2_USE_MKL": mkl, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ct2_isa", "--child"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    elapsed = next((float(r["elapsed"]) for r in rows if "elapsed" in r), None)
    error = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return [r for r in rows if "name" in r], elapsed, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", action="append", choices=ISAS, help="instruction set(s); default all")
    parser.add_argument("--mkl", action="append", choices=("0", "1"), help="CT2_USE_MKL value(s); default both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child()
    print(f"{'config':<14} {'fixture':<14} {'30 s window (transcribe)':<26} {'dynamic window (batch)':<26}")
    timings = []
    for isa in args.isa or ISAS:
        for mkl in args.mkl or ("0", "1"):
            config = f"{isa}/{'mkl' if mkl == '1' else 'dnnl'}"
            rows, elapsed, error = _run(isa, mkl)
            if error:
                print(f"{config:<14} not run: {error}")
                continue
            for r in rows:
                cells = [f"{r[k][0]} {r[k][1]:.3f} wer {r[k][2]:.2f}" for k in ("seq", "batch")]  # type: ignore[index]
                print(f"{config:<14} {r['name']:<14} {cells[0]:<26} {cells[1]:<26}", flush=True)
            timings.append((config, elapsed))
    print("\nseconds for all fixtures, both paths (model load excluded):")
    for config, elapsed in timings:
        print(f"  {config:<14} {elapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
