"""Benchmark: CPU cost of the segmenter per second of audio, and its onset/end accuracy.

Run: ``python -m benchmarks.segmenter [--repeat N]``. Prints figures; asserts nothing.
Uses the fixture WAVs under tests/fixtures/gateway (speech with known onsets and ends) and
synthetic noise (the worst case for cost: WebRTC fires on every frame, so Silero never sleeps).
"""

from __future__ import annotations

import argparse
import json
import time
import wave
from pathlib import Path

import numpy as np

from gateway.segmenter import Segmenter, SegmenterOptions, SpeechEnded, SpeechStarted, UtteranceReady
from gateway.vad import SileroVad

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gateway"
SR = 16000


def _load(name: str) -> tuple[np.ndarray, dict]:
    with wave.open(str(FIXTURES / f"{name}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm, json.loads((FIXTURES / f"{name}.json").read_text())


def _cost(pcm: np.ndarray, opts: SegmenterOptions, repeat: int, chunk: int = 1600) -> float:
    """CPU milliseconds per second of audio (process time, best of ``repeat``)."""
    best = float("inf")
    for _ in range(repeat):
        seg = Segmenter(opts)
        t0 = time.process_time()
        for i in range(0, len(pcm), chunk):
            seg.feed(pcm[i : i + chunk])
        seg.flush()
        best = min(best, time.process_time() - t0)
    return best / (len(pcm) / SR) * 1000


def _accuracy(pcm: np.ndarray, meta: dict, silence: float) -> list[tuple[float, float]]:
    """(onset error, end error) per utterance, in ms; clips closer than ``silence`` merged."""
    truth: list[list[float]] = []
    for c in meta["speech"]:
        if truth and c["onset"] - truth[-1][1] < silence:
            truth[-1][1] = c["end"]
        else:
            truth.append([c["onset"], c["end"]])
    seg = Segmenter(SegmenterOptions(silence_threshold_seconds=silence))
    utts: list[UtteranceReady] = []
    for i in range(0, len(pcm), 1600):
        utts += [e for e in seg.feed(pcm[i : i + 1600]) if isinstance(e, UtteranceReady)]
    utts += [e for e in seg.flush() if isinstance(e, UtteranceReady)]
    if len(utts) != len(truth):
        return [(float("nan"), float("nan"))]
    return [((u.start - a) * 1000, (u.end - b) * 1000) for u, (a, b) in zip(utts, truth, strict=True)]


def _latency(pcm: np.ndarray, meta: dict, opts: SegmenterOptions) -> tuple[list[float], list[float], float]:
    """Audio-time delay (ms) from true onset to the SpeechStarted emission, from the silence
    threshold's end to SpeechEnded, and the slowest 30 ms feed (ms of CPU)."""
    seg = Segmenter(opts)
    onsets = [c["onset"] for c in meta["speech"]]
    started: list[float] = []
    ended: list[float] = []
    worst = 0.0
    for i in range(0, len(pcm), 480):
        t0 = time.perf_counter()
        events = seg.feed(pcm[i : i + 480])
        worst = max(worst, time.perf_counter() - t0)
        for e in events:
            if isinstance(e, SpeechStarted):
                truth = onsets[int(np.argmin([abs(o - e.t) for o in onsets]))]
                started.append((seg.now - truth) * 1000)
            elif isinstance(e, SpeechEnded):
                ended.append((seg.now - e.t - opts.silence_threshold_seconds) * 1000)
    return started, ended, worst * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    SileroVad.shared()  # load once, outside the timings
    rng = np.random.default_rng(0)
    noise = np.clip(rng.standard_normal(20 * SR) * 3000, -32768, 32767).astype(np.int16)
    quiet = np.clip(rng.standard_normal(20 * SR) * 5, -32768, 32767).astype(np.int16)
    cases: dict[str, np.ndarray] = {"quiet room (20 s)": quiet, "loud white noise (20 s)": noise}
    for name in ("speech_piper", "speech_espeak"):
        cases[f"{name} fixture"] = _load(name)[0]
    print("segmenter CPU cost, ms per second of audio (100 ms chunks, best of", args.repeat, "runs)")
    for label, pcm in cases.items():
        dual = _cost(pcm, SegmenterOptions(), args.repeat)
        webrtc = _cost(pcm, SegmenterOptions(use_silero=False), args.repeat)
        print(f"  {label:28s} dual VAD {dual:6.2f}   WebRTC only {webrtc:6.2f}")
    pcm48 = np.clip(rng.standard_normal(10 * 48000) * 5, -32768, 32767).astype(np.int16)
    # _cost counts seconds at 16 kHz; scale to seconds of 48 kHz audio.
    cost48 = _cost(pcm48, SegmenterOptions(sample_rate=48000), args.repeat) * 48000 / SR
    print(f"  {'quiet room, 48 kHz input':28s} dual VAD {cost48:6.2f}   (resampling included)")
    print("accuracy on fixtures, ms (segmenter minus truth), onset / end per utterance")
    for name in ("speech_piper", "speech_espeak"):
        pcm, meta = _load(name)
        for silence in (2.0, 0.8):
            errs = ", ".join(f"{a:+.0f}/{b:+.0f}" for a, b in _accuracy(pcm, meta, silence))
            print(f"  {name:14s} silence {silence:.1f} s: {errs}")
    print("event delays in audio time, ms (30 ms frames): onset -> SpeechStarted emitted;")
    print("  silence threshold elapsed -> SpeechEnded emitted; slowest single feed() call (CPU)")
    for min_speech, confirm in ((0.25, None), (0.15, None), (0.25, 0.1)):
        label = f"min_speech {min_speech:.2f} confirm {confirm or min_speech:.2f}"
        for name in ("speech_piper", "speech_espeak"):
            pcm, meta = _load(name)
            opts = SegmenterOptions(
                silence_threshold_seconds=0.8, min_speech_seconds=min_speech, confirm_seconds=confirm
            )
            started, ended, worst = _latency(pcm, meta, opts)
            print(f"  {label} {name:14s} started +{', +'.join(f'{x:.0f}' for x in started)}"
                  f"   ended +{', +'.join(f'{x:.0f}' for x in ended)}   slowest feed {worst:.2f} ms")


if __name__ == "__main__":
    main()
