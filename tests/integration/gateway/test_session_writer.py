"""The session writer on a real Redis: what is queued together goes in one pipeline, in order,
and a fenced write or a script Redis lost (a restart) is still handled as one by one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from common import bus
from gateway import session_actions as sa
from gateway.effects import Effects
from gateway.outbox import Outbox
from gateway.router import ResultRouter
from gateway.session_writer import Fenced, SessionWriter
from gateway.sessions import SessionConfig, SessionStore

pytestmark = pytest.mark.integration


def final(seq: int) -> dict[str, Any]:
    return {"type": "final", "segment_id": f"s:{seq}", "text": f"t{seq}", "seq": seq}


def job(index: int) -> sa.QueueAudio:
    audio_job = bus.AudioJob(kind="final", session_id="s", utterance_index=index, segment_id=bus.segment_id("s", index),
                             start=0.0, end=1.0, created_at=0.0)
    return sa.QueueAudio(audio_job, np.zeros(1600, dtype=np.int16))


class Recorder:
    """Counts the round trips the writer makes (the boundary: redis-py's pipeline execute)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.pipelines: list[int] = []

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.redis.pipeline(transaction=transaction)
        execute = pipe.execute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.pipelines.append(len(pipe))
            return await execute(*args, **kwargs)

        pipe.execute = counted
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)


async def run_writer(redis_client: Any, holder: str, actions: list[sa.Action]) -> tuple[list[Any], Recorder]:
    recorder = Recorder(redis_client)
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    ctx = SimpleNamespace(redis=recorder, store=store, router=ResultRouter(redis_client), name="gw")
    reports: list[Any] = []
    writer = SessionWriter(ctx, holder, lambda: "s", lambda sid, item: reports.append(item),  # type: ignore[arg-type]
                           lambda: None)
    for action in actions:
        writer.put(action)  # queued before the writer runs: one batch
    writer.stop()
    await asyncio.wait_for(writer.run(), 10)
    return reports, recorder


async def test_a_batch_is_one_round_trip_in_order(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "me", SessionConfig(), owner="", secret="x")
    actions: list[sa.Action] = [job(0), sa.Write({"next_utterance": 1}), sa.Write({"next_seq": 2}, final(1)),
                                sa.Write({"next_seq": 3}, final(2)), sa.Note("takeover x")]
    reports, recorder = await run_writer(redis_client, "me", actions)
    assert reports == []
    assert len(recorder.pipelines) == 1  # everything in one pipeline
    assert [m["text"] for m in await store.log("s")] == ["t1", "t2"]
    stored = await store.load("s")
    assert stored is not None and stored.next_seq == 3 and stored.next_utterance == 1
    assert await redis_client.xlen(bus.audio_jobs_stream("s")) == 1
    assert await redis_client.xlen(bus.TRANSCRIPTS) == 2  # the store's copies of the two finals
    entries = await redis_client.xrange(bus.result_stream_key("s"))
    assert [fields[b"c"] for _id, fields in entries] == [b"takeover x"]


async def test_writes_queued_one_after_another_are_one_script_call(redis_client: Any) -> None:
    """A release's writes (a final's, then the turn end's): one run of the write script, not
    one per message, with the messages logged in order and the newest counters kept."""
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "me", SessionConfig(), owner="", secret="x")

    async def script_runs() -> int:
        stats = await redis_client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))

    before = await script_runs()
    actions: list[sa.Action] = [sa.Write({"next_seq": 2, "last_final": "t1"}, final(1)),
                                sa.Write({"next_seq": 3, "delivered_below": 2}, final(2)),
                                sa.Note("takeover x"), sa.Write({"next_seq": 4}, final(3))]
    reports, _ = await run_writer(redis_client, "me", actions)
    assert reports == []
    assert await script_runs() - before == 2  # the two writes before the note, then the one after it
    assert [m["text"] for m in await store.log("s")] == ["t1", "t2", "t3"]
    stored = await store.load("s")
    assert stored is not None and stored.next_seq == 4 and stored.delivered_below == 2 and stored.last_final == "t1"
    assert await redis_client.xlen(bus.TRANSCRIPTS) == 3


async def test_a_fenced_group_of_writes_is_reported_once_and_writes_nothing(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "new-holder", SessionConfig(), owner="", secret="x")
    reports, _ = await run_writer(redis_client, "old", [sa.Write({"next_seq": 2}, final(1)),
                                                         sa.Write({"next_seq": 3}, final(2))])
    assert [type(r) for r in reports] == [Fenced]
    assert await store.log("s") == []
    stored = await store.load("s")
    assert stored is not None and stored.next_seq == 1


async def test_a_job_and_its_counter_leave_in_one_round_trip(redis_client: Any) -> None:
    """A flush's actions (the vad message, the final job, the job's counter): the connection
    sends the job itself, and the counter goes in the same pipeline, after it."""
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "me", SessionConfig(), owner="", secret="x")
    recorder = Recorder(redis_client)
    ctx = SimpleNamespace(redis=recorder, store=store, router=ResultRouter(redis_client), name="gw")
    writer = SessionWriter(ctx, "me", lambda: "s", lambda sid, item: None, lambda: None)  # type: ignore[arg-type]
    effects = Effects(Outbox(SimpleNamespace(), 8), writer, lambda: [])  # type: ignore[arg-type]
    vad = sa.Send({"type": "vad", "event": "speech_end", "t": 1.0, "seq": 3})
    await effects.run([vad, job(0), sa.Write({"next_utterance": 1})])
    assert recorder.pipelines == [2]  # the XADD and the counter's write: one round trip, no writer task
    stored = await store.load("s")
    assert stored is not None and stored.next_utterance == 1
    assert await redis_client.xlen(bus.audio_jobs_stream("s")) == 1


async def test_a_fenced_write_in_a_batch_is_reported(redis_client: Any) -> None:
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "old", SessionConfig(), owner="", secret="x")
    await store.claim("s", "new")
    reports, _ = await run_writer(redis_client, "old", [job(0), sa.Write({"next_seq": 2}, final(1))])
    assert [type(r) for r in reports] == [Fenced]
    assert await store.log("s") == []  # the old holder wrote nothing
    assert await redis_client.xlen(bus.audio_jobs_stream("s")) == 1  # its job still went


async def test_a_lost_write_script_is_loaded_again(redis_client: Any) -> None:
    """After a Redis restart the script cache is empty: the pipeline answers NOSCRIPT, and the
    write is made again one by one (which loads the script), not lost."""
    store = SessionStore(redis_client, ttl_seconds=60, log_maxlen=100)
    await store.create("s", "me", SessionConfig(), owner="", secret="x")
    await redis_client.script_flush()
    reports, _ = await run_writer(redis_client, "me", [sa.Write({"next_seq": 2}, final(1)),
                                                        sa.Write({"next_seq": 3}, final(2))])
    assert reports == []
    assert [m["text"] for m in await store.log("s")] == ["t1", "t2"]
