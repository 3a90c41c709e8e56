"""The scaling model's arithmetic on made-up costs that can be checked by hand."""

from __future__ import annotations

import pytest

from benchmarks.scaling_model import Costs, Workload, model


def rows(relay_us: float) -> list[dict[str, float | str]]:
    def row(step: str, audio: float, cpu: float, bytes_in: float, bytes_out: float) -> dict[str, float | str]:
        return {"step": step, "audio_seconds": audio, "server_cpu_us": cpu, "bytes_in": bytes_in,
                "bytes_out": bytes_out}

    return [
        # 10 us + 10 us per audio second to write; 32,000 bytes per audio second each way
        row("xadd_job", 1, 20, 32000, 0), row("xadd_job", 2, 30, 64000, 0),
        row("read_ack_job", 1, 10, 0, 32000), row("read_ack_job", 2, 10, 0, 64000),
        row("publish", 0, 5, 500, 500), row("record_final", 0, 5, 1000, 0), row("xadd_transcr", 0, 5, 300, 0),
        row("cluster_publish (third node)", 0, relay_us, 0, 0),
    ]


WORK = Workload(speech_fraction=1.0, stt_send_interval=0.5, partial_audio_seconds=2.0, final_audio_seconds=4.0,
                translated_fraction=0.0, replicas_per_master=0, stt_rtf=0.1)


def test_bytes_cpu_and_workers_per_stream_by_hand() -> None:
    row = model(Costs(rows(relay_us=0.0)), WORK, streams=1)
    # 2 partials (2 s) and 0.25 finals (4 s) per second: 5 s of audio written and read.
    assert row.bytes_per_s == pytest.approx(2 * 64000 * 2 + 0.25 * (128000 * 2 + 1000) + 2.25 * 1000)
    # CPU: partials 2 x (30 + 10), finals 0.25 x (50 + 10 + 5), publishes 2.25 x 5
    assert row.redis_cpu_cores == pytest.approx((80 + 16.25 + 11.25) / 1e6)
    assert row.stt_cores == pytest.approx(5 * 0.1)
    assert row.gateways == 1 and row.shards == 1


def test_shards_follow_bytes_and_no_count_fits_once_the_relay_is_over_budget() -> None:
    costs = Costs(rows(relay_us=0.0))
    small, big = model(costs, WORK, 1000), model(costs, WORK, 100000)
    assert big.shards == pytest.approx(big.bytes_per_s / WORK.shard_net_budget_bytes, abs=1)
    assert big.shards is not None and small.shards is not None and big.shards > small.shards
    # 225,000 publishes/s relayed at 3 us each is 0.675 cores on every node: over 0.5.
    relayed = model(Costs(rows(relay_us=3.0)), WORK, 100000)
    assert relayed.broadcast_cpu_per_node == pytest.approx(0.675)
    assert relayed.shards is None and relayed.shards_slot_local == big.shards
