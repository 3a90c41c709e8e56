"""The scaling model of docs/scaling.md: measured per-job bus costs carried to N live streams.

    python -m benchmarks.bus --jobs 3000 --repeat 3 --cluster --json > /tmp/bus.jsonl
    python -m benchmarks.scaling_model /tmp/bus.jsonl [--partial-audio-seconds 2.0] [--streams 1000 10000 100000]

Pure arithmetic on two inputs: the per-job costs ``benchmarks.bus`` measured (server CPU and
bytes of each Redis operation a job causes) and the workload assumptions in
:class:`Workload` (how often a stream sends jobs and how much audio each carries). Nothing
here talks to Redis. The output is the markdown table docs/scaling.md quotes.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Workload:
    """What one live stream (one client session) asks of the bus, per second."""

    speech_fraction: float = 1.0  # peak: every stream speaking (the 2 partials/s)
    stt_send_interval: float = 0.5  # STT_SEND_INTERVAL: one partial job per interval of speech
    partial_audio_seconds: float = 2.0  # audio per partial job (issue 14: the uncommitted tail)
    final_audio_seconds: float = 3.0  # audio per final job (one committed segment)
    translated_fraction: float = 1.0  # finals with a target language
    stt_rtf: float = 0.020  # STT CPU seconds per audio second (tiny.en batched, 1 thread, README)
    translation_cpu_seconds: float = 0.15  # per final (assumption: NLLB-600M int8, not measured)
    sessions_per_gateway: int = 200  # MAX_SESSIONS
    shard_cpu_budget: float = 0.5  # cores of a Redis main thread a shard may use (headroom kept)
    shard_net_budget_bytes: float = 625e6  # bytes/s in+out per node: half of 10 Gbit/s
    replicas_per_master: int = 1

    @property
    def partials_per_second(self) -> float:
        return self.speech_fraction / self.stt_send_interval

    @property
    def finals_per_second(self) -> float:
        return self.speech_fraction / self.final_audio_seconds


@dataclass(frozen=True)
class OpCost:
    cpu_us: float
    bytes_in: float
    bytes_out: float


class Costs:
    """Per-job costs from ``benchmarks.bus --json``; the audio-carrying steps are fitted as
    ``a + b * audio_seconds`` (least squares over the measured durations)."""

    def __init__(self, rows: list[dict[str, float | str]]) -> None:
        self.rows = rows
        self.fixed = {str(r["step"]): OpCost(float(r["server_cpu_us"]), float(r["bytes_in"]), float(r["bytes_out"]))
                      for r in rows if not float(r["audio_seconds"])}

    def _fit(self, step: str, attr: str, seconds: float) -> float:
        points = [(float(r["audio_seconds"]), float(r[attr])) for r in self.rows if r["step"] == step]
        if len(points) == 1:
            return points[0][1] * seconds / points[0][0]
        n = len(points)
        mx = sum(x for x, _ in points) / n
        my = sum(y for _, y in points) / n
        slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
        return max(0.0, my + slope * (seconds - mx))

    def audio_step(self, step: str, seconds: float) -> OpCost:
        return OpCost(*(self._fit(step, a, seconds) for a in ("server_cpu_us", "bytes_in", "bytes_out")))

    def step(self, name: str) -> OpCost:
        return self.fixed[name]

    def broadcast_cpu_us(self) -> float:
        """CPU a node spends on a PUBLISH it only relays (no subscriber, not the sender)."""
        third = [v for k, v in self.fixed.items() if k.startswith("cluster_publish") and "third" in k]
        return third[0].cpu_us if third else 0.0


@dataclass(frozen=True)
class Row:
    streams: int
    jobs_per_s: float
    publishes_per_s: float
    redis_cpu_cores: float  # keyed work, spread over the shards
    broadcast_cpu_per_node: float  # classic PUBLISH relayed to every node: does not shrink with shards
    bytes_per_s: float
    shards: int | None  # None: no shard count fits (the pub/sub broadcast alone is over budget)
    shards_slot_local: int  # the same if results were slot-local (SPUBLISH or a per-session stream)
    ops_per_shard: float
    bytes_per_shard: float
    stt_cores: float
    translation_cores: float
    gateways: int


def model(costs: Costs, work: Workload, streams: int) -> Row:
    p, f = work.partials_per_second, work.finals_per_second
    t = f * work.translated_fraction
    xp, rp = costs.audio_step("xadd_job", work.partial_audio_seconds), costs.audio_step("read_ack_job",
                                                                                      work.partial_audio_seconds)
    xf, rf = costs.audio_step("xadd_job", work.final_audio_seconds), costs.audio_step("read_ack_job",
                                                                                    work.final_audio_seconds)
    small_read = costs.audio_step("read_ack_job", 0.0)  # a translation job carries no audio
    pub, rec, xtr = costs.step("publish"), costs.step("record_final"), costs.step("xadd_transcr")
    publishes = p + f + t  # partial results, finals, translations
    # Commands per job: XADD, XREADGROUP, XACK, XDEL, PUBLISH; a final and a translation also
    # write the session log (XADD, EXPIRE, HSET, EXPIRE).
    ops = p * 4.125 + (f + t) * 9.125  # XREADGROUP counted once per batch of 8
    cpu_us = (p * (xp.cpu_us + rp.cpu_us) + f * (xf.cpu_us + rf.cpu_us + rec.cpu_us) + t * (
        xtr.cpu_us + small_read.cpu_us + rec.cpu_us) + publishes * pub.cpu_us)
    written = p * xp.bytes_in + f * (xf.bytes_in + rec.bytes_in) + t * (xtr.bytes_in + rec.bytes_in)
    read = p * rp.bytes_out + f * rf.bytes_out + t * small_read.bytes_out
    pub_bytes = publishes * (pub.bytes_in + pub.bytes_out)
    per_stream_bytes = written * (1 + work.replicas_per_master) + read + pub_bytes
    total_cpu = streams * cpu_us / 1e6
    total_bytes = streams * per_stream_bytes
    broadcast = streams * publishes * costs.broadcast_cpu_us() / 1e6
    room = work.shard_cpu_budget - broadcast
    shards: int | None
    if room <= 0:
        shards = None
    else:
        shards = max(1, math.ceil(total_cpu / room), math.ceil(total_bytes / work.shard_net_budget_bytes))
    slot_local = max(1, math.ceil(total_cpu / work.shard_cpu_budget),
                     math.ceil(total_bytes / work.shard_net_budget_bytes))
    per = shards or slot_local
    stt = streams * (p * work.partial_audio_seconds + f * work.final_audio_seconds) * work.stt_rtf
    return Row(
        streams=streams, jobs_per_s=streams * (p + f + t), publishes_per_s=streams * publishes,
        redis_cpu_cores=total_cpu, broadcast_cpu_per_node=broadcast, bytes_per_s=total_bytes, shards=shards,
        shards_slot_local=slot_local,
        ops_per_shard=streams * ops / per, bytes_per_shard=total_bytes / per, stt_cores=stt,
        translation_cores=streams * t * work.translation_cpu_seconds,
        gateways=math.ceil(streams / work.sessions_per_gateway),
    )


def format_rows(rows: list[Row]) -> str:
    lines = [
        "| live streams | jobs/s | PUBLISH/s | Redis CPU (cores, keyed) | PUBLISH relay CPU per node | "
        "bytes/s (all) | shards needed | shards, results slot-local | ops/s per shard | bytes/s per shard | "
        "STT cores | translation cores | gateways |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        shards = str(r.shards) if r.shards else "none fits"
        lines.append(
            f"| {r.streams:,} | {r.jobs_per_s:,.0f} | {r.publishes_per_s:,.0f} | {r.redis_cpu_cores:.2f} | "
            f"{r.broadcast_cpu_per_node:.2f} | {_bytes(r.bytes_per_s)} | {shards} | {r.shards_slot_local} | "
            f"{r.ops_per_shard:,.0f} | "
            f"{_bytes(r.bytes_per_shard)} | {r.stt_cores:,.0f} | {r.translation_cores:,.0f} | {r.gateways:,} |"
        )
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("costs", type=Path, help="output of python -m benchmarks.bus --json")
    parser.add_argument("--streams", type=int, nargs="+", default=[1000, 10000, 100000])
    for f in fields(Workload):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = parser.parse_args()
    rows_in = [json.loads(line) for line in args.costs.read_text().splitlines() if line.strip()]
    work = Workload(**{f.name: getattr(args, f.name) for f in fields(Workload)})
    costs = Costs(rows_in)
    print(f"workload: {work}")
    print(format_rows([model(costs, work, n) for n in args.streams]))


if __name__ == "__main__":
    main()
