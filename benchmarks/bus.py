"""Per-job Redis costs of the bus, the inputs of the scaling model in docs/scaling.md.

    python -m benchmarks.bus [--jobs 2000] [--audio-seconds 1 2 4] [--json]

On a fresh embedded redis-server (one node: what one cluster shard costs), each step of a
job's life runs ``--jobs`` times, one command or pipeline per round trip as the services send
them, and the server's own counters are read before and after: CPU (``INFO cpu``,
``used_cpu_user + used_cpu_sys``, the server process only) and bytes on the wire
(``INFO stats`` ``total_net_input_bytes`` / ``total_net_output_bytes``, both directions as the
server sees them, RESP framing included). Client wall time per operation is printed too, but
it is the round trip on loopback, not a server cost.

Steps (each as the services do it):

* ``xadd_job``      gateway: XADD of an audio job (JSON meta + int16 PCM) to ``audio_jobs``
* ``read_ack_job``  STT worker: XREADGROUP of batches of 8, then XACK + XDEL in one pipeline
* ``result_stream`` worker: a final (JSON) appended to ``result_stream:{id}`` (XADD capped +
  EXPIRE, one pipeline); one reader, as the gateway's router, XREADs every session's stream
  from its last id
* ``record_final``  gateway: the session log (XADD capped + EXPIRE + HSET + EXPIRE, one pipeline)
* ``xadd_transcr``  STT worker: XADD of a translation job to ``transcriptions``
* ``xlen``          gateway: the queue-depth poll (per shard, 5 times a second per gateway)
* ``cluster_result_stream`` (with ``--cluster``): the same appends through the cluster client
  on a local 3-master cluster, the CPU and bytes of *each* node reported: a result stream is
  keyed, so only the master of its slot pays (the classic PUBLISH it replaced was relayed to
  every node)

With ``--repeat N`` each step runs N times and the least server CPU is kept (the run least
disturbed by the other processes); bytes do not vary.

The machine is shared while this runs (other processes compete for the same cores), so the
CPU figures are upper bounds: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

from common import bus
from common.embedded_redis import EmbeddedRedis

BATCH = 8  # the STT worker's MAX_BATCH_SIZE default


@dataclass(frozen=True)
class StepCost:
    step: str
    audio_seconds: float
    ops: int
    server_cpu_us: float  # per job
    bytes_in: float  # per job, client -> server
    bytes_out: float  # per job, server -> clients
    client_us: float  # per job, loopback round trip included


def _counters(client: redis.Redis) -> tuple[float, int, int]:
    cpu = client.info("cpu")
    stats = client.info("stats")
    return (
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(stats["total_net_input_bytes"]),
        int(stats["total_net_output_bytes"]),
    )


def _measure(client: redis.Redis, step: str, audio_seconds: float, jobs: int, run: Callable[[], None]) -> StepCost:
    cpu0, in0, out0 = _counters(client)
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    cpu1, in1, out1 = _counters(client)
    # The two INFO calls are counted too; they are a few hundred bytes, negligible per job.
    return StepCost(step, audio_seconds, jobs, round((cpu1 - cpu0) / jobs * 1e6, 2),
                    round((in1 - in0) / jobs, 1), round((out1 - out0) / jobs, 1), round(wall / jobs * 1e6, 1))


def _audio_job(i: int, audio_seconds: float) -> dict[Any, Any]:
    session = f"{i % 500:032x}"
    job = bus.AudioJob(kind="partial", session_id=session, utterance_index=i, partial_seq=i % 7,
                       segment_id=bus.segment_id(session, i), start=12.5, end=12.5 + audio_seconds,
                       source_language="en", target_language="es", prompt="the committed text so far " * 3,
                       created_at=time.time())
    rng = np.random.default_rng(i)
    pcm = (rng.standard_normal(int(16000 * audio_seconds)) * 3000).astype(np.int16)
    return bus.encode_audio_job(job, pcm)


def _final(i: int) -> str:
    session = f"{i % 500:032x}"
    words = [bus.Word(word=" word", start=0.1 * k, end=0.1 * k + 0.08, probability=0.93) for k in range(0)]
    return bus.encode_result(bus.FinalResult(
        session_id=session, segment_id=bus.segment_id(session, i), utterance_index=i,
        text="Please send the report before Friday, and thank you very much.", language="en",
        language_probability=0.98, start=12.5, end=15.1, words=words or None, worker="stt-host-0",
        inference_seconds=0.05, speech_end_at=time.time(), queued_at=time.time(), translation_expected=True,
    ))


def run(jobs: int, audio_seconds: list[float]) -> list[StepCost]:
    results: list[StepCost] = []
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        for seconds in audio_seconds:
            client.flushall()
            client.xgroup_create(bus.AUDIO_JOBS, bus.STT_GROUP, id="0", mkstream=True)
            payloads = [_audio_job(i, seconds) for i in range(jobs)]

            def xadd(payloads: list[dict[Any, Any]] = payloads) -> None:
                for fields in payloads:
                    client.xadd(bus.AUDIO_JOBS, fields)

            def read_ack() -> None:
                while True:
                    reply: Any = client.xreadgroup(bus.STT_GROUP, "w-0", {bus.AUDIO_JOBS: ">"}, count=BATCH)
                    if not reply:
                        return
                    ids: list[bytes] = [entry_id for entry_id, _ in reply[0][1]]
                    pipe = client.pipeline(transaction=False)
                    pipe.xack(bus.AUDIO_JOBS, bus.STT_GROUP, *ids)
                    pipe.xdel(bus.AUDIO_JOBS, *ids)
                    pipe.execute()

            results.append(_measure(client, "xadd_job", seconds, jobs, xadd))
            results.append(_measure(client, "read_ack_job", seconds, jobs, read_ack))
        results += _result_steps(server, client, jobs)
        client.close()
    return results


class _StreamReader(threading.Thread):
    """The gateway router's read: one blocking XREAD over every held session's result stream,
    each from the last id seen, until ``expected`` entries have come."""

    def __init__(self, client: redis.Redis, keys: list[str], expected: int) -> None:
        super().__init__(daemon=True)
        self.client, self.expected, self.received = client, expected, 0
        self.last = {key: "0-0" for key in keys}
        self._stopping = threading.Event()

    def run(self) -> None:
        while self.received < self.expected and not self._stopping.is_set():
            reply: Any = self.client.xread(self.last, count=512, block=100)  # type: ignore[arg-type]
            for key, entries in reply or []:
                self.last[key.decode()] = entries[-1][0].decode()
                self.received += len(entries)

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)
        self.client.close()


def _result_steps(server: EmbeddedRedis, client: redis.Redis, jobs: int) -> list[StepCost]:
    client.flushall()
    finals = [_final(i) for i in range(jobs)]
    sessions = sorted({json.loads(f)["session_id"] for f in finals})
    reader = _StreamReader(redis.Redis.from_url(server.url), [bus.result_stream_key(s) for s in sessions], jobs)
    reader.start()

    def append() -> None:
        for data in finals:
            pipe = client.pipeline(transaction=False)
            bus.publish_result(pipe, bus.decode_result(data), 3600)
            pipe.execute()
        reader.join(30)

    def record() -> None:
        for i, data in enumerate(finals):
            session = f"{i % 500:032x}"
            pipe = client.pipeline(transaction=False)
            pipe.xadd(bus.session_log_key(session), {"seq": i, "msg": data}, maxlen=1000, approximate=True)
            pipe.expire(bus.session_log_key(session), 3600)
            pipe.hset(bus.session_key(session), mapping={"next_seq": i + 1, "next_utterance": i + 1})
            pipe.expire(bus.session_key(session), 3600)
            pipe.execute()

    def xadd_transcription() -> None:
        for i in range(jobs):
            session = f"{i % 500:032x}"
            job = bus.TranscriptionJob(session_id=session, segment_id=bus.segment_id(session, i), utterance_index=i,
                                       text="Please send the report before Friday.", source_language="en",
                                       target_language="es", created_at=time.time())
            client.xadd(bus.TRANSCRIPTIONS, bus.encode_transcription_job(job))

    out = [_measure(client, "result_stream", 0, jobs, append)]
    reader.stop()
    if reader.received < jobs:
        raise RuntimeError(f"the reader got {reader.received} of {jobs} results")
    out.append(_measure(client, "record_final", 0, jobs, record))
    out.append(_measure(client, "xadd_transcr", 0, jobs, xadd_transcription))

    def xlen() -> None:
        for _ in range(jobs):
            client.xlen(bus.TRANSCRIPTIONS)

    out.append(_measure(client, "xlen", 0, jobs, xlen))
    return out


def cluster_result_stream(jobs: int) -> list[StepCost]:
    """The result appends through the cluster client on a 3-master cluster: cost on every node."""
    from redis.cluster import RedisCluster

    from common.embedded_cluster import EmbeddedCluster

    finals = [bus.decode_result(_final(i)) for i in range(jobs)]
    with EmbeddedCluster(masters=3, replicas=0) as cluster:
        nodes = [redis.Redis(host="127.0.0.1", port=p) for p in cluster.ports]
        client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        before = [_counters(n) for n in nodes]
        started = time.perf_counter()
        for final in finals:
            pipe = client.pipeline(transaction=False)
            bus.publish_result(pipe, final, 3600)
            pipe.execute()
        wall = time.perf_counter() - started
        after = [_counters(n) for n in nodes]
        client.close()
        out = []
        for k, (b, a) in enumerate(zip(before, after, strict=True)):
            # Each stream is on one master; the 500 sessions spread over the three.
            out.append(StepCost(f"cluster_result_stream (node {k})", 0, jobs, round((a[0] - b[0]) / jobs * 1e6, 2),
                                round((a[1] - b[1]) / jobs, 1), round((a[2] - b[2]) / jobs, 1),
                                round(wall / jobs * 1e6, 1)))
        for n in nodes:
            n.close()
    return out


def least_cpu(runs: list[list[StepCost]]) -> list[StepCost]:
    """Per step, the run with the least server CPU (the least disturbed on a shared machine)."""
    return [min(same, key=lambda r: r.server_cpu_us) for same in zip(*runs, strict=True)]


def format_table(results: list[StepCost]) -> str:
    lines = ["| step | audio s | server CPU us/job | bytes in/job | bytes out/job | client us/job |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.step} | {r.audio_seconds:g} | {r.server_cpu_us:.1f} | {r.bytes_in:.0f} | "
                     f"{r.bytes_out:.0f} | {r.client_us:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--audio-seconds", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the least CPU is kept")
    parser.add_argument("--cluster", action="store_true", help="also measure the result appends on a 3-master cluster")
    parser.add_argument("--json", action="store_true", help="one JSON object per step instead of a table")
    args = parser.parse_args()
    runs = []
    for _ in range(max(1, args.repeat)):
        steps = run(args.jobs, args.audio_seconds)
        if args.cluster:
            steps += cluster_result_stream(args.jobs)
        runs.append(steps)
    results = least_cpu(runs)
    if args.json:
        for r in results:
            print(json.dumps(asdict(r)))
    else:
        print(f"bus costs per job on one redis-server node, {args.jobs} jobs per step, least CPU of "
              f"{max(1, args.repeat)} run(s) (shared machine: CPU figures are upper bounds)")
        print(format_table(results))


if __name__ == "__main__":
    main()
