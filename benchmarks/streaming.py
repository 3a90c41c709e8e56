"""Streaming benchmark (issue 14): conversational clips through the real pipeline, in real time.

Builds the conversational material on demand (``demos.conversation``: two dialogues of two
voices with short gaps and overlaps in 10-20 dB noise, and a monologue without pauses over
0.3 s), starts an embedded Redis, one STT worker process and a gateway in this process (so its
counters can be read), and streams the clips from N clients at real-time pace. Printed:

* per-sentence final latency: a sentence's last word -> the first final whose span holds it,
  p50 / p95 over every sentence of every client;
* first-partial latency: speech onset (``vad speech_start``) -> the turn's first ``realtime``;
* streaming WER (all finals of a clip, concatenated) against offline WER of the same model
  (faster-whisper's own ``transcribe`` on the whole file, beam 5);
* sentences without a final (lost), sessions without ``done``;
* STT worker RSS at the end (``/proc``), and audio put on the bus per second of audio streamed
  (final jobs' audio, and the sessions' audio streams that partials name by reference), with
  what the worker read back from those streams beside it;
* the pipeline overhead of finals (the gateway's ``gateway_pipeline_overhead_seconds``, p50 /
  p95 interpolated in its buckets): job queued -> result back, minus inference.

``--sweep 1,4,8,16`` runs several client counts and prints the largest N whose p95 stays within
2x the single-client p95 with no final lost (the capacity). Figures depend on the machine and
on what else runs on it. Run: ``python -m benchmarks.streaming [--model tiny.en]
[--encoder-window dynamic|full] [--clients 1] [--sweep 1,4,8,16] [--setting NAME=VALUE ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from pydantic import SecretStr
from websockets.asyncio.client import connect

from common.compat import timeout as compat_timeout
from common.embedded_redis import EmbeddedRedis, free_port
from common.settings import GatewaySettings
from demos.conversation import DEFAULT_OUT, ConversationOptions, build
from demos.manifest import Clip
from gateway import metrics
from gateway.service import GatewayService

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
CHUNK = 480  # 30 ms frames, like a microphone client
MATCH_SLACK = 0.35  # a final "holds" a sentence's last word if its span reaches this close to it


@dataclass
class ClientRun:
    clip: Clip
    began: float = 0.0  # wall clock of the first audio frame
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    done: bool = False


def _pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def _norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_client(url: str, run: ClientRun, pcm: bytes, timeout: float) -> None:
    async with connect(url, max_size=2**22) as ws:
        json.loads(await ws.recv())  # ready

        async def send() -> None:
            run.began = time.time()
            step = CHUNK * 2
            for k, i in enumerate(range(0, len(pcm), step)):
                await ws.send(pcm[i : i + step])
                # Paced on the wall clock, so a slow event loop does not slow the talker down.
                await asyncio.sleep(max(0.0, run.began + (k + 1) * CHUNK / SR - time.time()))
            await ws.send(json.dumps({"type": "end"}))

        sender = asyncio.create_task(send())
        with contextlib.suppress(asyncio.TimeoutError):
            async with compat_timeout(timeout):
                async for raw in ws:
                    msg = json.loads(raw)
                    run.messages.append((time.time(), msg))
                    if msg["type"] == "done":
                        run.done = True
                        break
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


@dataclass
class Figures:
    clients: int
    sentence_latency: list[float]
    first_partial: list[float]
    lost: int
    not_done: int
    streaming_wer: float
    finals: int
    #: Final job queued -> its result at the gateway, minus inference (p50, p95 seconds; from
    #: the gateway's histogram): Redis hops, and waiting behind the worker's partial batches.
    overhead: tuple[float, float] = (float("nan"), float("nan"))
    #: Audio the worker read back from the sessions' audio streams, per second streamed (not on
    #: the bus figure: that counts what was put on it).
    read_back: float = float("nan")


def analyse(runs: list[ClientRun]) -> Figures:
    latencies: list[float] = []
    first_partial: list[float] = []
    lost = 0
    refs: list[str] = []
    hyps: list[str] = []
    finals_total = 0
    for run in runs:
        finals = [(t, m) for t, m in run.messages if m["type"] == "final" and m.get("text", "").strip()]
        finals_total += len(finals)
        for sentence in run.clip.utterances:
            holding = [t for t, m in finals
                       if m["start"] - MATCH_SLACK <= sentence.end <= m["end"] + MATCH_SLACK]
            if not holding:
                lost += 1
                continue
            latencies.append(min(holding) - (run.began + sentence.end))
        onset: float | None = None
        for t, m in run.messages:
            if m["type"] == "vad" and m["event"] == "speech_start":
                onset = run.began + float(m["t"])
            elif m["type"] == "realtime" and onset is not None:
                first_partial.append(t - onset)
                onset = None
        refs.append(_norm(run.clip.reference_text))
        hyps.append(_norm(" ".join(m["text"] for _, m in finals)))
    return Figures(
        clients=len(runs),
        sentence_latency=latencies,
        first_partial=first_partial,
        lost=lost,
        not_done=sum(1 for r in runs if not r.done),
        streaming_wer=float(jiwer.wer(refs, hyps)),
        finals=finals_total,
    )


def offline_texts(model: str, clips: list[Clip], audio_dir: Path) -> dict[str, str]:
    """The same model on each whole file (faster-whisper's own transcribe, beam 5, VAD filter)."""
    from faster_whisper import WhisperModel

    whisper = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=2)
    out = {}
    for clip in clips:
        audio = np.frombuffer(_pcm(audio_dir / clip.file), "<i2").astype(np.float32) / 32768.0
        segments, _ = whisper.transcribe(audio, beam_size=5, vad_filter=True, language="en")
        out[clip.name] = _norm(" ".join(s.text for s in segments))
    return out


def offline_wer(runs: list[ClientRun], texts: dict[str, str]) -> float:
    """Offline WER over the same clips (with the same multiplicity) as a round's clients."""
    if not texts:
        return float("nan")
    return float(jiwer.wer([_norm(r.clip.reference_text) for r in runs], [texts[r.clip.name] for r in runs]))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bus_audio_seconds() -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in metrics.JOB_AUDIO_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["kind"]] = sample.value
    return out


def worker_read_seconds(port: int) -> float:
    """Audio the STT worker read back from the sessions' audio streams (partials by reference),
    from its ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stt_session_audio_read_seconds_total":
                return float(sample.value)
    return 0.0


def overhead_buckets() -> list[tuple[float, float]]:
    """The gateway's pipeline-overhead histogram as cumulative (upper bound, count) pairs."""
    out = []
    for metric in metrics.PIPELINE_OVERHEAD.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                out.append((float(sample.labels["le"]), sample.value))
    return sorted(out)


def histogram_quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """Prometheus's ``histogram_quantile`` over the observations between two snapshots
    (linear inside a bucket; the last finite bound when it falls in +Inf)."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-12)
        lower, below = le, cumulative
    return lower


class Stack:
    """Embedded Redis, one STT worker process, one in-process gateway."""

    def __init__(self, model: str, window: str, settings: dict[str, str]) -> None:
        self.model, self.window, self.settings = model, window, settings
        self.redis = EmbeddedRedis()
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_port = 0
        self.gateway: GatewayService | None = None

    def _start_worker(self) -> None:
        port = self.worker_port = free_port()
        env = {**os.environ, "REDIS_URL": self.redis.url, "MODEL_SIZE": self.model, "HEALTH_PORT": str(port),
               "ENCODER_WINDOW": self.window, "LOG_LEVEL": "WARNING", **self.settings}
        self.worker = subprocess.Popen([sys.executable, "-m", "stt_worker"], env=env, cwd=ROOT)
        deadline = time.monotonic() + 120
        while True:
            if self.worker.poll() is not None:
                raise RuntimeError("the STT worker exited")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the STT worker did not get ready")
            time.sleep(0.3)

    async def __aenter__(self) -> Stack:
        self.redis.__enter__()
        await asyncio.to_thread(self._start_worker)
        fields: dict[str, Any] = {k.lower(): v for k, v in self.settings.items()
                                  if k.lower() in GatewaySettings.model_fields}
        self.gateway = GatewayService(GatewaySettings(redis_url=SecretStr(self.redis.url), gateway_port=0,
                                                      health_port=0, **fields))
        await self.gateway.startup()
        return self

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return f"ws://127.0.0.1:{self.gateway.port}/"

    async def __aexit__(self, *exc: object) -> None:
        if self.gateway is not None:
            await self.gateway.shutdown()
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.redis.__exit__(None, None, None)


async def run_round(stack: Stack, clips: list[Clip], audio: dict[str, bytes], n: int
                    ) -> tuple[Figures, dict[str, float], list[ClientRun]]:
    """One round of ``n`` clients; the bus ratio is per job kind (audio seconds queued per
    second of audio streamed)."""
    runs = [ClientRun(clips[i % len(clips)]) for i in range(n)]
    before, overhead_before = bus_audio_seconds(), overhead_buckets()
    read_before = await asyncio.to_thread(worker_read_seconds, stack.worker_port)
    longest = max(r.clip.duration for r in runs)
    await asyncio.gather(*(run_client(stack.url, r, audio[r.clip.name], longest * 2 + 60) for r in runs))
    streamed = sum(r.clip.duration for r in runs)
    after, overhead_after = bus_audio_seconds(), overhead_buckets()
    read_after = await asyncio.to_thread(worker_read_seconds, stack.worker_port)
    figures = analyse(runs)
    figures.read_back = (read_after - read_before) / streamed
    figures.overhead = (histogram_quantile(overhead_before, overhead_after, 0.5),
                        histogram_quantile(overhead_before, overhead_after, 0.95))
    return figures, {k: (v - before.get(k, 0.0)) / streamed for k, v in after.items()}, runs


def row(label: str, f: Figures, offline: float, bus: dict[str, float], rss: float) -> str:
    kinds = " + ".join(f"{k} {v:.2f}" for k, v in sorted(bus.items())) + f"; read back {f.read_back:.2f}"
    return (f"| {label} | {f.clients} | {pct(f.sentence_latency, 50):.2f} / {pct(f.sentence_latency, 95):.2f} | "
            f"{pct(f.first_partial, 50):.2f} / {pct(f.first_partial, 95):.2f} | {f.streaming_wer:.3f} | "
            f"{offline:.3f} | "
            f"{f.finals} | {f.lost} | {f.not_done} | {rss:.0f} | {sum(bus.values()):.2f} ({kinds}) | "
            f"{f.overhead[0] * 1000:.0f} / {f.overhead[1] * 1000:.0f} |")


async def main_async(args: argparse.Namespace) -> int:
    from stt_worker.models import resolve_model

    manifest = build(ConversationOptions(out=args.audio_dir))
    clips = [manifest.clips[name] for name in args.clips.split(",")]
    audio = {c.name: _pcm(args.audio_dir / c.file) for c in clips}
    settings = dict(s.split("=", 1) for s in args.setting)
    sweep = [int(x) for x in args.sweep.split(",")] if args.sweep else [args.clients]
    label = f"{args.model} {args.encoder_window}" + "".join(f" {k}={v}" for k, v in settings.items())
    print(f"# streaming benchmark: {label}; clips {', '.join(c.name for c in clips)} "
          f"({sum(c.duration for c in clips):.0f} s, {sum(len(c.utterances) for c in clips)} sentences); "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| setup | clients | sentence -> final p50 / p95 s | onset -> first partial p50 / p95 s | "
          "streaming WER | offline WER, same clips | finals | sentences lost | no done | STT RSS MB | "
          "bus audio / audio | final overhead p50 / p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    texts: dict[str, str] = {}
    if args.offline:  # before the stack starts, so it does not compete with the clients
        model = str(resolve_model(args.model, Path.home() / ".cache" / "speech-pipeline").path_or_name)
        texts = await asyncio.to_thread(offline_texts, model, clips, args.audio_dir)
    results: list[Figures] = []
    async with Stack(args.model, args.encoder_window, settings) as stack:
        assert stack.worker is not None
        for n in sweep:
            figures, ratio, runs = await run_round(stack, clips, audio, n)
            if args.dump:
                args.dump.write_text(json.dumps([{"clip": r.clip.name, "began": r.began, "messages": r.messages}
                                                 for r in runs]))
            results.append(figures)
            print(row(label, figures, offline_wer(runs, texts), ratio, rss_mb(stack.worker.pid)), flush=True)
    if len(results) > 1:
        base = pct(results[0].sentence_latency, 95)
        ok = [f.clients for f in results if f.lost == 0 and f.not_done == 0
              and pct(f.sentence_latency, 95) <= 2 * base]
        print(f"capacity: {max(ok) if ok else 0} clients within 2x the single-client p95 ({base:.2f} s) "
              "with no final lost")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--encoder-window", default="dynamic", choices=("dynamic", "full"))  # the product's default
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--sweep", default="", help="comma-separated client counts, e.g. 1,4,8,16")
    parser.add_argument("--clips", default="dialogue0,dialogue1,monologue")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE for the gateway and worker")
    parser.add_argument("--dump", type=Path, help="write every client's messages (JSON) here")
    parser.add_argument("--no-offline", dest="offline", action="store_false", help="skip the offline WER")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
