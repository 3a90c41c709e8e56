"""The review's defects of issue 13, shown on the real gateway (real Redis, real sockets)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import numpy as np
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from common import bus
from common.compat import timeout as compat_timeout

from .test_gateway import clip, norm, read_all, read_until, send_audio, url

pytestmark = pytest.mark.integration

SECRET = "session-defects-test-" + "s" * 30


def token(sub: str) -> str:
    now = time.time()
    return jwt.encode({"sub": sub, "exp": int(now + 300), "iat": int(now)}, SECRET, algorithm="HS256")


async def recv_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def still_answers(ws: Any) -> None:
    await ws.send(json.dumps({"type": "ping", "id": "alive"}))
    await read_until(ws, lambda m: m["type"] == "pong" and m.get("id") == "alive", timeout=5)


async def test_another_subject_cannot_resume_a_session(idle_redis: Any, make_gateway: Any) -> None:
    gw = await make_gateway(idle_redis.url, jwt_secret=SECRET)
    async with connect(f"{url(gw)}?token={token('alice')}") as alice:
        sid = (await recv_json(alice))["session_id"]
        async with connect(f"{url(gw)}?token={token('bob')}") as bob:
            await recv_json(bob)
            await bob.send(json.dumps({"type": "config", "session_id": sid, "last_seq": 0}))
            msg = await recv_json(bob)
            assert msg["type"] == "error" and msg["code"] == "unknown_session"
            assert sid not in msg["message"]
            await still_answers(bob)
        await still_answers(alice)  # the holder is not disturbed
    async with connect(f"{url(gw)}?token={token('alice')}") as again:  # the owner may resume
        await recv_json(again)
        await again.send(json.dumps({"type": "config", "session_id": sid, "last_seq": 0}))
        ready = await read_until(again, lambda m: m["type"] in ("ready", "error"))
        assert ready[-1]["type"] == "ready" and ready[-1]["session_id"] == sid


async def test_without_auth_resume_needs_the_secret_from_ready(idle_redis: Any, make_gateway: Any) -> None:
    gw = await make_gateway(idle_redis.url)
    async with connect(url(gw)) as holder:
        ready = await recv_json(holder)
        sid, secret = ready["session_id"], ready["resume_secret"]
        for attempt in ({}, {"resume_secret": "wrong"}):
            async with connect(url(gw)) as thief:
                await recv_json(thief)
                await thief.send(json.dumps({"type": "config", "session_id": sid, "last_seq": 0, **attempt}))
                msg = await recv_json(thief)
                assert msg["type"] == "error" and msg["code"] == "unknown_session"
        await still_answers(holder)
        async with connect(url(gw)) as owner:
            await recv_json(owner)
            await owner.send(json.dumps({"type": "config", "session_id": sid, "resume_secret": secret}))
            got = await read_until(owner, lambda m: m["type"] in ("ready", "error"))
            assert got[-1]["type"] == "ready" and got[-1]["session_id"] == sid
            with pytest.raises(ConnectionClosed):  # the old connection lets go
                while True:
                    await recv_json(holder)
            assert holder.close_code == 1001


async def test_a_flooding_client_is_answered_per_dropped_message_then_closed(make_gateway: Any) -> None:
    gw = await make_gateway(max_messages_per_second=5)
    async with connect(url(gw)) as ws:
        await recv_json(ws)
        for _ in range(200):
            await ws.send(json.dumps({"type": "ping"}))
        messages: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed):
            while True:
                messages.append(await recv_json(ws))
        assert ws.close_code == 1008
    pongs = sum(m["type"] == "pong" for m in messages)
    limited = sum(m.get("code") == "rate_limited" for m in messages)
    assert pongs >= 1 and limited >= 1
    # Every message was answered, by a pong or by a rate_limited error, until the close.
    assert pongs + limited == len(messages)


async def test_a_ping_only_session_still_ends_at_max_session_seconds(make_gateway: Any) -> None:
    gw = await make_gateway(max_session_seconds=1.0)
    async with connect(url(gw)) as ws:
        await recv_json(ws)

        async def pinger() -> None:
            while True:
                await ws.send(json.dumps({"type": "ping"}))
                await asyncio.sleep(0.2)

        task = asyncio.create_task(pinger())
        try:
            messages = await read_all(ws, timeout=10)
        finally:
            task.cancel()
    assert any(m.get("code") == "session_too_long" for m in messages)
    assert messages[-1]["type"] == "done"


async def test_a_final_published_while_the_subscription_is_down_arrives_once(
    idle_redis: Any, make_gateway: Any
) -> None:
    """Defect 4: the gateway's Redis connections are cut, and a worker publishes the final
    before the gateway is back. It still arrives, exactly once."""
    admin = aioredis.Redis.from_url(idle_redis.url)
    gw = await make_gateway(idle_redis.url, stt_send_interval=100.0)
    try:
        async with connect(url(gw)) as ws:
            sid = (await recv_json(ws))["session_id"]
            await send_audio(ws, clip("en_weather"), speed=20)
            await ws.send(json.dumps({"type": "flush"}))
            job: bus.AudioJob | None = None
            async with compat_timeout(10):
                while job is None:
                    for _id, fields in await admin.xrange(bus.AUDIO_JOBS):
                        found, _ = bus.decode_audio_job(fields)
                        if found.session_id == sid and found.kind == "final":
                            job = found
                    await asyncio.sleep(0.05)
            final = bus.FinalResult(
                session_id=sid, segment_id=job.segment_id, utterance_index=job.utterance_index,
                text="it is sunny", start=job.start, end=job.end, worker="test",
            )
            # Cut every connection of the gateway (the admin's own survives), then publish at
            # once, the way a worker does, while the gateway is still reconnecting.
            await admin.client_kill_filter(_type="pubsub")
            await admin.client_kill_filter(_type="normal")
            async with admin.pipeline(transaction=False) as pipe:
                bus.publish_result(pipe, final)
                await pipe.execute()
            got = await read_until(ws, lambda m: m["type"] == "final", timeout=15)
            await ws.send(json.dumps({"type": "end"}))
            rest = await read_all(ws, timeout=30)
        finals = [m for m in got + rest if m["type"] == "final"]
        assert [f["segment_id"] for f in finals] == [f"{sid}:0"]
        assert norm(finals[0]["text"]) == "it is sunny"
        assert rest[-1]["type"] == "done"
    finally:
        await admin.aclose()


async def test_partials_continue_when_speech_resumes_after_a_pause(make_gateway: Any, stt_worker: Any) -> None:
    """Defect 2: a final goes out during the pause (a pause commit, issue 14; an early final
    before it); speech resumes within the silence threshold, and partials of the resumed speech
    still come."""
    gw = await make_gateway(silence_threshold_seconds=2.0, commit_pause_seconds=0.5, stt_send_interval=0.3)
    pause = np.zeros(int(16000 * 1.2), dtype=np.int16)
    audio = np.concatenate([clip("en_weather", silence=0)[:-1], pause, clip("en_coffee", silence=2.5)])
    async with connect(url(gw)) as ws:
        await recv_json(ws)
        sender = asyncio.create_task(send_audio(ws, audio, speed=1.0))
        got = await read_until(ws, lambda m: m["type"] == "final" and "coffee" in norm(m["text"]), timeout=60)
        await sender
    finals = [m for m in got if m["type"] == "final"]
    # The first sentence was committed before the resumed speech's final (at the pause at the latest).
    assert len(finals) >= 2 and "coffee" not in norm(finals[0]["text"])
    partial_texts = [norm(m["text"]) for m in got if m["type"] == "realtime"]
    assert any("coffee" in t for t in partial_texts), partial_texts


async def test_no_session_id_in_warning_lines(idle_redis: Any, make_gateway: Any, caplog: Any) -> None:
    """Defect 1: session ids were in WARNING lines (malformed results, failed writes). A
    session id no longer resumes a session by itself, but it stays out of the logs."""
    import logging

    admin = aioredis.Redis.from_url(idle_redis.url)
    gw = await make_gateway(idle_redis.url, stt_send_interval=100.0)
    try:
        with caplog.at_level(logging.WARNING):
            async with connect(url(gw)) as ws:
                sid = (await recv_json(ws))["session_id"]
                await admin.xadd(bus.result_stream_key(sid), {"r": "not a result"})
                await admin.client_kill_filter(_type="normal")
                await send_audio(ws, clip("en_weather"), speed=20)
                await ws.send(json.dumps({"type": "flush"}))
                await still_answers(ws)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("malformed" in r.getMessage() for r in warnings)
        assert not [r.getMessage() for r in warnings if sid in r.getMessage()]
    finally:
        await admin.aclose()
