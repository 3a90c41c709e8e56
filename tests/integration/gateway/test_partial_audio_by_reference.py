"""Partials by reference on a real Redis: the gateway's writer puts each sample of a session's
audio on the session's audio stream once, however many partials name it, and the worker's
cache gives every partial exactly its own samples, reading only what was appended since."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from common import bus
from gateway import session_actions as sa
from gateway.router import ResultRouter
from gateway.session_writer import SessionWriter
from gateway.sessions import SessionConfig, SessionStore
from stt_worker.session_audio import SessionAudioCache

pytestmark = pytest.mark.integration

SR = 16000
SETTINGS = SimpleNamespace(session_ttl_seconds=60, max_uncommitted_seconds=8.0, stt_send_interval=0.5,
                           streaming_commits=True, max_segment_seconds=30.0)


def speech(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8000, 8000, round(seconds * SR)).astype(np.int16)


def partial(session: str, seq: int, first: int, last: int, append_from: int, audio: np.ndarray) -> sa.QueueAudio:
    job = bus.AudioJob(kind="partial", session_id=session, utterance_index=0, partial_seq=seq,
                       segment_id=bus.segment_id(session, 0), start=0.0, end=last / SR, audio_start=first / SR,
                       created_at=0.0, audio_samples=(first, last))
    return sa.QueueAudio(job, audio[first:last], append_from=append_from)


async def write(redis: Any, session: str, actions: list[sa.Action]) -> None:
    store = SessionStore(redis, ttl_seconds=60, log_maxlen=100)
    await store.create(session, "me", SessionConfig(), owner="", secret="x")
    ctx = SimpleNamespace(redis=redis, store=store, router=ResultRouter(redis), name="gw",
                          settings=SETTINGS)
    writer = SessionWriter(ctx, "me", lambda: session, lambda sid, item: None, lambda: None)  # type: ignore[arg-type]
    for action in actions:
        writer.put(action)
        await writer.send_now()  # one partial at a time, as a connection sends them
    writer.stop()
    await asyncio.wait_for(writer.run(), 10)


async def jobs(redis: Any, session: str) -> list[tuple[bus.AudioJob, np.ndarray]]:
    """The session's jobs (one ``audio_jobs`` stream holds every session's on a single node)."""
    decoded = [bus.decode_audio_job(fields) for _id, fields in await redis.xrange(bus.audio_jobs_stream(session))]
    return [(job, pcm) for job, pcm in decoded if job.session_id == session]


async def test_growing_tails_put_each_sample_on_the_bus_once(redis_client: Any) -> None:
    audio = speech(6.0, seed=1)
    # Tails of a turn, every 0.5 s; a commit at 2 s moves the tail's start (minus an overlap).
    tails = [(0, 8000), (0, 16000), (0, 24000), (0, 32000), (28000, 40000), (28000, 48000), (28000, 56000)]
    actions: list[sa.Action] = []
    appended = 0
    for seq, (first, last) in enumerate(tails):
        actions.append(partial("s1", seq, first, last, max(first, appended), audio))
        appended = last
    await write(redis_client, "s1", actions)

    entries = await redis_client.xrange(bus.session_audio_key("s1"))
    on_stream = sum(len(bus.decode_session_audio(f)[1]) for _id, f in entries)
    assert on_stream == 56000  # each sample once, against 232000 if every tail were carried
    queued = await jobs(redis_client, "s1")
    assert [len(pcm) for _job, pcm in queued] == [0] * len(tails)  # the jobs carry none

    cache = SessionAudioCache()
    for (job, _pcm), (first, last) in zip(queued, tails, strict=True):
        got = await cache.audio(redis_client, job, now=0.0)
        assert got is not None and np.array_equal(got, audio[first:last])


async def test_a_resumed_session_whose_clock_restarted_gets_its_own_audio(redis_client: Any) -> None:
    """The new holder's clock starts at 0 again and appends from there: the worker that held
    the old run (covering the same sample numbers) must not hand out the old audio."""
    before, after = speech(2.0, seed=2), speech(2.0, seed=3)
    await write(redis_client, "s2", [partial("s2", 0, 0, 24000, 0, before)])
    cache = SessionAudioCache()
    old_job = (await jobs(redis_client, "s2"))[0][0]
    assert np.array_equal(await cache.audio(redis_client, old_job, now=0.0), before[:24000])  # type: ignore[arg-type]

    await write(redis_client, "s2", [partial("s2", 1, 8000, 16000, 8000, after)])
    new_job = (await jobs(redis_client, "s2"))[-1][0]
    got = await cache.audio(redis_client, new_job, now=1.0)
    assert got is not None and np.array_equal(got, after[8000:16000])


async def test_audio_the_stream_no_longer_has_is_none(redis_client: Any) -> None:
    audio = speech(1.0, seed=4)
    await write(redis_client, "s3", [partial("s3", 0, 0, 16000, 0, audio)])
    job = (await jobs(redis_client, "s3"))[0][0]
    await redis_client.delete(bus.session_audio_key("s3"))  # expired, or a Redis that lost it
    assert await SessionAudioCache().audio(redis_client, job, now=0.0) is None
    # A range reaching past what was ever appended is not padded either.
    late = job.model_copy(update={"audio_samples": (0, 20000)})
    cache = SessionAudioCache()
    await write(redis_client, "s4", [partial("s4", 0, 0, 16000, 0, audio)])
    assert await cache.audio(redis_client, late.model_copy(update={"session_id": "s4"}), now=0.0) is None


async def test_idle_sessions_are_dropped_from_the_cache(redis_client: Any) -> None:
    audio = speech(0.5, seed=5)
    cache = SessionAudioCache(idle_seconds=10.0, max_sessions=2)
    for i, session in enumerate(("a", "b", "c")):
        await write(redis_client, session, [partial(session, 0, 0, 8000, 0, audio)])
        job = (await jobs(redis_client, session))[0][0]
        assert await cache.audio(redis_client, job, now=float(i)) is not None
    assert len(cache) == 2  # the least recently used went over the cap
    job = (await jobs(redis_client, "c"))[0][0]
    await cache.audio(redis_client, job, now=100.0)
    assert len(cache) == 1  # the others were idle for over 10 s


async def test_the_stream_keeps_only_what_the_longest_tail_needs(redis_client: Any) -> None:
    """A long turn's appends: the stream is capped at exactly the appends the longest
    uncommitted tail (8 s plus a margin, at one append per 0.5 s) can name."""
    audio = speech(30.0, seed=6)
    actions: list[sa.Action] = [partial("s5", seq, seq * 8000, (seq + 1) * 8000, seq * 8000, audio)
                                for seq in range(60)]
    await write(redis_client, "s5", actions)
    maxlen = bus.session_audio_maxlen(8.0, 0.5)
    assert maxlen == 24
    entries = await redis_client.xrange(bus.session_audio_key("s5"))
    assert len(entries) == maxlen  # exact: an approximate cap would keep whole 100-entry nodes
    assert bus.decode_session_audio(entries[0][1])[0] == (60 - maxlen) * 8000  # the newest kept
