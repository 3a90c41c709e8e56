"""The bus on a real Redis Cluster (3 masters, a replica each): client, names, consumer, result streams.

The cluster is the session fixture ``redis_cluster`` (tests/conftest.py); every test empties
it first. The failover test builds a cluster of its own, since it leaves one master dead.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from common import bus
from common.compat import timeout as compat_timeout
from common.consumer import ConsumerOptions, Entry
from common.embedded_cluster import EmbeddedCluster
from common.heartbeat import Heartbeat, live_instances
from common.redis_conn import ResultPipeline, connect_with, is_cluster
from common.settings import CommonSettings
from common.sharded_consumer import ShardedConsumer
from gateway.limits import AudioQuota, SubjectSessions
from gateway.router import ResultRouter
from gateway.sessions import SessionConfig, SessionStore

pytestmark = pytest.mark.integration

Job = tuple[bus.AudioJob, np.ndarray]


def settings_for(cluster: EmbeddedCluster, shards: int = 4) -> CommonSettings:
    return CommonSettings(
        redis_url=cluster.url, redis_cluster=True, stream_shards=shards,  # type: ignore[arg-type]
        redis_connect_timeout_seconds=10,
    )


@pytest.fixture
async def cluster_client(redis_cluster: EmbeddedCluster) -> AsyncIterator[aioredis.Redis]:
    client = await connect_with(settings_for(redis_cluster))
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    try:
        yield client
    finally:
        await client.aclose()


def audio_job(session: str, index: int) -> dict[Any, Any]:
    job = bus.AudioJob(kind="final", session_id=session, utterance_index=index,
                       segment_id=bus.segment_id(session, index), start=0, end=0.1, created_at=time.time())
    return bus.encode_audio_job(job, np.zeros(160, dtype=np.int16))


def master_of(cluster: EmbeddedCluster, key: str) -> int:
    from redis.crc import key_slot

    port = cluster.port_for_slot(key_slot(key.encode()))
    assert port is not None
    return port


async def test_connect_with_gives_the_cluster_client_and_the_cluster_names(
    redis_cluster: EmbeddedCluster, cluster_client: aioredis.Redis
) -> None:
    assert is_cluster(cluster_client)
    assert bus.layout().cluster and bus.layout().stream_shards == 4
    nodes = cluster_client.get_nodes()  # type: ignore[attr-defined]
    assert {n.port for n in nodes} == set(redis_cluster.ports)  # discovered from one URL
    # The four default shards of each stream sit on all three masters.
    assert {master_of(redis_cluster, s) for s in bus.audio_jobs_streams()} == set(redis_cluster.master_ports())


async def test_session_state_log_and_limits_work_across_slots(
    redis_cluster: EmbeddedCluster, cluster_client: aioredis.Redis
) -> None:
    store = SessionStore(cluster_client, ttl_seconds=60, log_maxlen=100)
    sessions = [f"s{i:02d}" for i in range(12)]
    for sid in sessions:
        # create() is a MULTI/EXEC over the session hash, write() a script over the hash and the
        # log: one slot each thanks to the hash tag.
        await store.create(sid, "g-1", SessionConfig(target_language="es"), owner="alice", secret="x")
        assert await store.write(sid, "g-1", {"next_seq": 2, "next_utterance": 1},
                                 {"type": "final", "seq": 1, "text": sid})
    for sid in sessions:
        loaded = await store.claim(sid, "g-2")  # a resume elsewhere: the old holder is fenced
        assert loaded is not None and loaded.next_seq == 2 and loaded.config.target_language == "es"
        assert [m["text"] for m in await store.log(sid)] == [sid]
        assert not await store.write(sid, "g-1", {"next_seq": 3})
    # The sessions' keys are spread over every master, each session's keys on one of them.
    homes = {master_of(redis_cluster, bus.session_key(s)) for s in sessions}
    assert homes == set(redis_cluster.master_ports())
    assert all(master_of(redis_cluster, bus.session_key(s)) == master_of(redis_cluster, bus.session_log_key(s))
               for s in sessions)
    # The limits' Lua scripts run on the cluster (one key each).
    limit = SubjectSessions(cluster_client, 2)
    assert await limit.acquire("alice", "s1") is None
    assert await limit.acquire("alice", "s2") is None
    assert await limit.acquire("alice", "s3") is not None
    quota = AudioQuota(cluster_client, 10.0)
    assert (await quota.charge("alice", 4.0)).accepted
    assert not (await quota.charge("alice", 7.0)).accepted


async def test_heartbeats_are_found_on_every_master(
    redis_cluster: EmbeddedCluster, cluster_client: aioredis.Redis
) -> None:
    beats = [Heartbeat(cluster_client, "stt_worker", f"host-{i}", 30) for i in range(9)]
    for beat in beats:
        await beat.beat()
    found = await live_instances(cluster_client, "stt_worker")  # SCAN on every master
    assert set(found) == {b.key for b in beats}
    assert len({master_of(redis_cluster, b.key) for b in beats}) > 1


async def test_sharded_consumer_takes_each_job_once_from_every_shard_one_batch_at_a_time(
    cluster_client: aioredis.Redis,
) -> None:
    streams = bus.audio_jobs_streams()
    sessions = [f"sess-{i}" for i in range(16)]
    expected = set()
    for sid in sessions:
        for index in range(3):
            await cluster_client.xadd(bus.audio_jobs_stream(sid), audio_job(sid, index))
            expected.add(bus.segment_id(sid, index))
    assert {bus.audio_jobs_stream(s) for s in sessions} == set(streams)
    seen: Counter[str] = Counter()
    running = 0
    most_at_once = 0

    async def handle(entries: list[Entry[Job]]) -> Sequence[str]:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.01)  # a batch takes time, so overlapping shards would show
        seen.update(e.job[0].segment_id for e in entries)
        running -= 1
        return [e.id for e in entries]

    options = ConsumerOptions(stream="", group=bus.STT_GROUP, consumer="w-0", batch_size=4, block_ms=100)
    consumer = ShardedConsumer(cluster_client, options, streams, bus.decode_audio_job, handle)
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run())
    try:
        async with compat_timeout(20):
            while set(seen) != expected:
                await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await task
    assert set(seen) == expected and max(seen.values()) == 1
    assert most_at_once == 1
    assert consumer.stats.handled == len(expected)
    assert await consumer.depth() == 0  # acknowledged and deleted on every shard


async def test_a_worker_reads_only_its_shard_subset(cluster_client: aioredis.Redis) -> None:
    mine = bus.audio_jobs_streams([1, 3])
    sessions = [f"sub-{i}" for i in range(24)]
    for sid in sessions:
        await cluster_client.xadd(bus.audio_jobs_stream(sid), audio_job(sid, 0))
    wanted = {sid for sid in sessions if bus.audio_jobs_stream(sid) in mine}
    seen: set[str] = set()

    async def handle(entries: list[Entry[Job]]) -> Sequence[str]:
        seen.update(e.job[0].session_id for e in entries)
        return [e.id for e in entries]

    options = ConsumerOptions(stream="", group=bus.STT_GROUP, consumer="w-1", block_ms=100)
    consumer = ShardedConsumer(cluster_client, options, mine, bus.decode_audio_job, handle)
    task = asyncio.create_task(consumer.run())
    try:
        async with compat_timeout(20):
            while seen != wanted:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time to (wrongly) read another shard
    finally:
        consumer.stop()
        await task
    assert seen == wanted and 0 < len(wanted) < len(sessions)
    others = [s for s in bus.audio_jobs_streams() if s not in mine]
    assert sum([int(await cluster_client.xlen(s)) for s in others]) == len(sessions) - len(wanted)


async def test_router_gets_results_for_sessions_on_every_master(
    redis_cluster: EmbeddedCluster, cluster_client: aioredis.Redis
) -> None:
    """Each session's result stream sits on its own slot: one XREAD cannot span them, so the
    router polls them in one cluster pipeline; sessions on all three masters get their results."""
    publisher = await connect_with(settings_for(redis_cluster))
    router = ResultRouter(cluster_client)
    await router.start()
    got: dict[str, list[str]] = {}
    sessions = [f"pub-{i}" for i in range(9)]
    try:
        for sid in sessions:
            got[sid] = []
            await router.attach(sid, f"conn-{sid}", lambda r, sid=sid: got[sid].append(r.text))  # type: ignore[misc, union-attr]
        assert len({master_of(redis_cluster, bus.result_stream_key(s)) for s in sessions}) == 3
        for sid in sessions:
            result = bus.FinalResult(session_id=sid, segment_id=f"{sid}:0", utterance_index=0, text=f"for {sid}",
                                     start=0, end=1)
            async with ResultPipeline(publisher) as pipe:
                bus.publish_result(pipe, result)
                await pipe.execute()
        async with compat_timeout(10):
            while any(not v for v in got.values()):
                await asyncio.sleep(0.02)
        assert got == {sid: [f"for {sid}"] for sid in sessions}
    finally:
        await router.close()
        await publisher.aclose()


async def test_jobs_survive_a_master_failover() -> None:
    """SIGKILL the master of a shard while a consumer reads it: its replica takes over, the
    client follows the new slot map, and no job queued before or after is lost."""
    with EmbeddedCluster(masters=3, replicas=1, node_timeout_ms=1000) as cluster:
        client = await connect_with(settings_for(cluster, shards=4))
        seen: Counter[str] = Counter()

        async def handle(entries: list[Entry[Job]]) -> Sequence[str]:
            seen.update(e.job[0].segment_id for e in entries)
            return [e.id for e in entries]

        options = ConsumerOptions(stream="", group=bus.STT_GROUP, consumer="w-0", block_ms=100)
        consumer = ShardedConsumer(client, options, bus.audio_jobs_streams(), bus.decode_audio_job, handle)
        await consumer.ensure_group()
        task = asyncio.create_task(consumer.run())
        sid = next(f"fo-{i}" for i in range(100) if bus.audio_jobs_stream(f"fo-{i}") == "audio_jobs:{0}")
        try:
            for index in range(5):
                await client.xadd(bus.audio_jobs_stream(sid), audio_job(sid, index))
            async with compat_timeout(10):
                while len(seen) < 5:
                    await asyncio.sleep(0.02)
            from redis.crc import key_slot

            slot = key_slot(b"audio_jobs:{0}")
            old = cluster.port_for_slot(slot)
            assert old is not None
            cluster.kill(old)
            # XADD during the failover: the client retries until the replica serves the slot.
            for index in range(5, 10):
                await client.xadd(bus.audio_jobs_stream(sid), audio_job(sid, index))
            new = cluster.wait_failover(slot, old)
            assert new != old
            async with compat_timeout(20):
                while len(seen) < 10:
                    await asyncio.sleep(0.05)
        finally:
            consumer.stop()
            await asyncio.wait_for(task, 15)
            await client.aclose()
        assert set(seen) == {bus.segment_id(sid, i) for i in range(10)}


async def test_router_loses_no_result_when_the_master_of_a_result_stream_dies() -> None:
    """SIGKILL the master holding a session's result stream: its replica is promoted, and every
    result written before, during (the writer retries) and after the failover arrives once."""
    with EmbeddedCluster(masters=3, replicas=1, node_timeout_ms=1000) as cluster:
        router_client = await connect_with(settings_for(cluster))
        publisher = await connect_with(settings_for(cluster))
        router = ResultRouter(router_client)
        await router.start()
        got: list[str] = []
        try:
            await router.attach("s1", "conn-1", lambda r: got.append(r.text))  # type: ignore[union-attr]

            async def write(index: int) -> None:
                result = bus.FinalResult(session_id="s1", segment_id=f"s1:{index}", utterance_index=index,
                                         text=f"r{index}", start=0, end=1)
                async with ResultPipeline(publisher) as pipe:
                    bus.publish_result(pipe, result)
                    await pipe.execute()

            for index in range(3):
                await write(index)
            async with compat_timeout(10):
                while len(got) < 3:
                    await asyncio.sleep(0.02)
            from redis.crc import key_slot

            slot = key_slot(bus.result_stream_key("s1").encode())
            old = cluster.port_for_slot(slot)
            assert old is not None
            cluster.kill(old)
            for index in range(3, 6):
                await write(index)
            assert cluster.wait_failover(slot, old) != old
            async with compat_timeout(30):
                while len(got) < 6:
                    await asyncio.sleep(0.05)
            assert got == [f"r{i}" for i in range(6)]
        finally:
            await router.close()
            await publisher.aclose()
            await router_client.aclose()


async def test_a_shard_that_fails_for_good_stops_the_others_and_raises(redis_client: aioredis.Redis) -> None:
    """Not a transient error (a key of the wrong type): run() raises it instead of leaving
    the worker reading only some of its shards."""
    await redis_client.set("not_a_stream", "x")

    async def handle(entries: list[Entry[Job]]) -> Sequence[str]:
        return [e.id for e in entries]

    options = ConsumerOptions(stream="", group=bus.STT_GROUP, consumer="w-0", block_ms=100)
    consumer = ShardedConsumer(redis_client, options, ["fine_stream", "not_a_stream"], bus.decode_audio_job, handle)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await asyncio.wait_for(consumer.run(), 10)
    assert all(c._stop.is_set() for c in consumer.consumers)  # every loop was told to stop
