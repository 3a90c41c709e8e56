"""The gateway with a real Redis, a real STT worker (tiny.en) and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from common import bus
from common.compat import timeout as compat_timeout

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def clip(name: str, silence: float = 1.2) -> np.ndarray:
    """An STT fixture clip with silence after it, so the segmenter ends the utterance."""
    pad = np.zeros(int(16000 * silence), dtype=np.int16)
    return np.concatenate([pad[:4800], wav(FIXTURES / "stt" / f"{name}.wav"), pad])


def norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


async def send_audio(ws: ClientConnection, pcm: np.ndarray, speed: float = 8.0, chunk: int = 512) -> None:
    for i in range(0, len(pcm), chunk):
        await ws.send(pcm[i : i + chunk].tobytes())
        await asyncio.sleep(chunk / 16000 / speed)


async def read_until(ws: ClientConnection, pred: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with compat_timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            out.append(msg)
            if pred(msg):
                return out


async def read_all(ws: ClientConnection, timeout: float = 60.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with compat_timeout(timeout):
        try:
            async for raw in ws:
                out.append(json.loads(raw))
        except ConnectionClosed:
            pass
    return out


def url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.port}/"


async def test_seed_minimal_client_gets_transcripts(make_gateway: Any, stt_worker: Any) -> None:
    gw = await make_gateway()
    async with connect(url(gw)) as ws:  # the seed's client: audio only, reads type/text/translation
        sender = asyncio.create_task(send_audio(ws, clip("en_weather")))
        texts = []
        async for message in ws:
            data = json.loads(message)
            if data["type"] in ("realtime", "final"):
                assert "text" in data and "translation" in data
                texts.append((data["type"], data["text"]))
            if data["type"] == "final":
                break
        await sender
    finals = [t for kind, t in texts if kind == "final"]
    assert "sunny" in norm(finals[0])


async def test_end_gives_done_and_results_are_numbered(make_gateway: Any, stt_worker: Any) -> None:
    gw = await make_gateway()
    async with connect(url(gw)) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["protocol"] == 1 and ready["session_id"]
        await send_audio(ws, np.concatenate([clip("en_weather"), clip("en_train")]))
        await ws.send(json.dumps({"type": "end"}))
        messages = await read_all(ws)
        assert ws.close_code == 1000
    assert messages[-1]["type"] == "done"
    finals = [m for m in messages if m["type"] == "final"]
    assert [m["segment_id"] for m in finals] == [f"{ready['session_id']}:0", f"{ready['session_id']}:1"]
    assert "sunny" in norm(finals[0]["text"]) and "platform" in norm(finals[1]["text"])
    vad = [m["event"] for m in messages if m["type"] == "vad"]
    assert vad[:2] == ["speech_start", "speech_end"]
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    # No partial after its utterance's final.
    final_at = {m["segment_id"]: i for i, m in enumerate(messages) if m["type"] == "final"}
    for i, m in enumerate(messages):
        if m["type"] == "realtime":
            assert i < final_at[m["segment_id"]]


async def test_two_sessions_never_see_each_others_results(make_gateway: Any, stt_worker: Any) -> None:
    gw = await make_gateway()

    async def session(name: str) -> tuple[str, list[dict[str, Any]]]:
        async with connect(url(gw)) as ws:
            ready = json.loads(await ws.recv())
            await send_audio(ws, clip(name), speed=4.0)
            await ws.send(json.dumps({"type": "end"}))
            return ready["session_id"], await read_all(ws)

    (sa, ma), (sb, mb) = await asyncio.gather(session("en_weather"), session("en_coffee"))
    for sid, messages, word, other in ((sa, ma, "sunny", "coffee"), (sb, mb, "coffee", "sunny")):
        results = [m for m in messages if m["type"] in ("realtime", "final")]
        assert results
        assert all(m["segment_id"].startswith(sid) for m in results)
        text = norm(" ".join(m["text"] for m in results if m["type"] == "final"))
        assert word in text and other not in text


async def test_bad_input_gets_errors_and_the_session_goes_on(make_gateway: Any) -> None:
    gw = await make_gateway()
    async with connect(url(gw)) as ws:
        await ws.recv()  # ready
        cases = [
            ("{not json", "bad_json"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps({"type": "config", "partials": "sometimes"}), "invalid_message"),
            (json.dumps({"type": "config", "sample_rate": 7000}), "unsupported_sample_rate"),
            (json.dumps([1, 2, 3]), None),
            (b"\x01\x02\x03", "odd_byte_count"),
        ]
        for payload, code in cases:
            await ws.send(payload)
            msg = json.loads(await ws.recv())
            assert msg["type"] == "error", (payload, msg)
            if code:
                assert msg["code"] == code, (payload, msg)
            assert msg["message"]
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        pong = json.loads(await ws.recv())
        assert pong == {"type": "pong", "id": 7, "t": pong["t"]}


async def test_oversize_frame_closes_with_1009(make_gateway: Any) -> None:
    gw = await make_gateway(max_frame_bytes=4096)
    async with connect(url(gw), max_size=None) as ws:
        await ws.recv()
        await ws.send(b"\x00" * 8192)
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1009


async def test_sessions_above_max_are_refused_with_1013(make_gateway: Any) -> None:
    gw = await make_gateway(max_sessions=1)
    async with connect(url(gw)) as first:
        await first.recv()
        async with connect(url(gw)) as second:
            with pytest.raises(ConnectionClosed):
                await second.recv()
            assert second.close_code == 1013
        await first.send(json.dumps({"type": "ping"}))
        assert json.loads(await first.recv())["type"] == "pong"


async def test_language_switch_applies_to_the_next_utterance(idle_redis: Any, make_gateway: Any) -> None:
    client = aioredis.Redis.from_url(idle_redis.url)
    gw = await make_gateway(idle_redis.url, stt_send_interval=100.0)
    try:
        async with connect(url(gw)) as ws:
            ready = json.loads(await ws.recv())
            sid = ready["session_id"]
            await ws.send(json.dumps({"type": "config", "source_language": "en", "target_language": "es",
                                      "source_languages": ["EN", "it"]}))
            ready2 = json.loads(await ws.recv())
            assert (ready2["source_language"], ready2["target_language"]) == ("en", "es")
            assert ready2["session_id"] == sid
            await send_audio(ws, clip("en_train"), speed=20)
            await ws.send(json.dumps({"type": "flush"}))
            deadline = time.monotonic() + 10
            jobs: list[bus.AudioJob] = []
            while time.monotonic() < deadline and not jobs:
                for _id, fields in await client.xrange(bus.AUDIO_JOBS):
                    job, _ = bus.decode_audio_job(fields)
                    if job.session_id == sid and job.kind == "final":
                        jobs.append(job)
                await asyncio.sleep(0.1)
            assert jobs and (jobs[0].source_language, jobs[0].target_language) == ("en", "es")
            assert jobs[0].source_languages == ["en", "it"]  # the session's set, for the worker
    finally:
        await client.aclose()


async def test_overloaded_queue_refuses_new_utterances_with_an_error(idle_redis: Any, make_gateway: Any) -> None:
    client = aioredis.Redis.from_url(idle_redis.url)
    gw = await make_gateway(idle_redis.url, max_queue_depth=2)
    # Fill audio_jobs past the limit (no worker reads this Redis).
    filler = bus.encode_audio_job(
        bus.AudioJob(kind="final", session_id="filler", utterance_index=0, segment_id="filler:0",
                     start=0, end=0.1, created_at=time.time()),
        np.zeros(1600, dtype=np.int16),
    )
    for _ in range(5):
        await client.xadd(bus.AUDIO_JOBS, filler)
    try:
        await asyncio.sleep(0.3)  # the gateway samples the depth every 200 ms
        async with connect(url(gw)) as ws:
            await ws.recv()
            await send_audio(ws, clip("en_train"), speed=20)
            await ws.send(json.dumps({"type": "flush"}))
            msgs = await read_until(ws, lambda m: m["type"] == "error" and m["code"] == "overloaded", timeout=10)
            assert msgs[-1]["segment_id"].endswith(":0")
    finally:
        await client.aclose()


async def test_resume_on_a_second_gateway_replays_once(make_gateway: Any, stt_worker: Any) -> None:
    gw1 = await make_gateway()
    gw2 = await make_gateway()
    async with connect(url(gw1)) as ws:
        ready = json.loads(await ws.recv())
        sid, secret = ready["session_id"], ready["resume_secret"]
        await send_audio(ws, clip("en_weather"))
        first = await read_until(ws, lambda m: m["type"] == "final")
        last_seq = first[-1]["seq"]
        # A second utterance; the client drops before its final arrives.
        await send_audio(ws, clip("en_coffee"), speed=20)
        await ws.send(json.dumps({"type": "flush"}))
    await asyncio.sleep(3.0)  # the final arrives while the client is away; gw1 logs it
    async with connect(url(gw2)) as ws:
        await ws.recv()  # a fresh session's ready
        await ws.send(json.dumps({"type": "config", "session_id": sid, "last_seq": last_seq, "resume_secret": secret}))
        got = await read_until(ws, lambda m: m["type"] == "final" and "coffee" in norm(m["text"]), timeout=20)
        finals = [m for m in got if m["type"] == "final"]
        assert [m["segment_id"] for m in finals] == [f"{sid}:1"]  # the first final is not replayed
        assert all(m["seq"] > last_seq for m in got if "seq" in m)
        # The session goes on here: the next utterance continues the numbering.
        await send_audio(ws, clip("en_train"))
        await ws.send(json.dumps({"type": "end"}))
        rest = await read_all(ws)
    later = [m for m in rest if m["type"] == "final"]
    assert [m["segment_id"] for m in later] == [f"{sid}:2"]
    assert rest[-1]["type"] == "done"


async def test_resuming_an_unknown_session_gets_an_error_and_a_new_session(make_gateway: Any) -> None:
    gw = await make_gateway()
    async with connect(url(gw)) as ws:
        ready = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "config", "session_id": "nope", "last_seq": 3}))
        msg = json.loads(await ws.recv())
        assert msg["type"] == "error" and msg["code"] == "unknown_session"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
        assert ready["session_id"] != "nope"


async def test_client_at_48khz_is_resampled(make_gateway: Any, stt_worker: Any) -> None:
    import soxr

    gw = await make_gateway()
    pcm48 = soxr.resample(clip("en_coffee").astype(np.float32), 16000, 48000).astype(np.int16)
    async with connect(url(gw)) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "sample_rate": 48000}))
        assert json.loads(await ws.recv())["sample_rate"] == 48000
        for i in range(0, len(pcm48), 1536):
            await ws.send(pcm48[i : i + 1536].tobytes())
            await asyncio.sleep(0.004)
        await ws.send(json.dumps({"type": "end"}))
        messages = await read_all(ws)
    finals = [m for m in messages if m["type"] == "final"]
    assert finals and "coffee" in norm(finals[0]["text"])


async def test_idle_session_is_told_and_closed(make_gateway: Any) -> None:
    gw = await make_gateway(idle_timeout_seconds=0.5)
    async with connect(url(gw)) as ws:
        await ws.recv()
        messages = await read_all(ws, timeout=10)
    assert [m["type"] for m in messages] == ["error", "done"]
    assert messages[0]["code"] == "idle_timeout"
    assert ws.close_code == 1000


async def test_message_flood_is_rate_limited_not_fatal(make_gateway: Any) -> None:
    gw = await make_gateway(max_messages_per_second=5)
    async with connect(url(gw)) as ws:
        await ws.recv()
        for _ in range(30):
            await ws.send(json.dumps({"type": "ping"}))
        msgs = await read_until(ws, lambda m: m["type"] == "error" and m["code"] == "rate_limited")
        assert any(m["type"] == "pong" for m in msgs)
        await asyncio.sleep(1.0)  # tokens refill: the session goes on
        while True:
            await ws.send(json.dumps({"type": "ping", "id": "after"}))
            msg = await read_until(ws, lambda m: m["type"] == "pong" and m.get("id") == "after")
            if msg:
                break


async def test_without_a_translation_model_one_error_and_every_final(
    make_gateway: Any, stt_worker: Any, gw_redis: Any
) -> None:
    """Offline, no translation model: the worker is up and degraded (/ready 503); the session
    gets exactly one ``translation_unavailable`` error and all its finals."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from common.embedded_redis import free_port

    def http_json(address: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(address, timeout=2) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    port = free_port()
    env = {**os.environ, "REDIS_URL": gw_redis.url, "HEALTH_PORT": str(port), "TRANSLATION_MODEL": "",
           "LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "translation_worker"], env=env,
                              cwd=Path(__file__).resolve().parents[3])
    try:
        body: dict[str, Any] = {}
        async with compat_timeout(30):
            while body.get("status") != "degraded":
                await asyncio.sleep(0.2)
                try:
                    _, body = http_json(f"http://127.0.0.1:{port}/health")
                except OSError:
                    pass
        assert "TRANSLATION_MODEL" in " ".join(body["reasons"].values())
        assert http_json(f"http://127.0.0.1:{port}/ready")[0] == 503
        gw = await make_gateway()
        async with connect(url(gw)) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "config", "target_language": "es"}))
            await ws.recv()
            await send_audio(ws, np.concatenate([clip("en_weather"), clip("en_train")]))
            await ws.send(json.dumps({"type": "end"}))
            messages = await read_all(ws)
        finals = [m for m in messages if m["type"] == "final"]
        errors = [m for m in messages if m["type"] == "error"]
        assert len(finals) == 2 and all(f["text"] for f in finals)
        assert [e["code"] for e in errors] == ["translation_unavailable"]
        assert messages[-1]["type"] == "done"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)


async def test_resume_on_the_same_gateway_while_the_old_connection_still_holds_results(
    make_gateway: Any, stt_worker: Any
) -> None:
    """A quick reconnect to the same gateway: the dropped connection is still waiting for a
    result when the new one takes the session over; both must not fight over the subscription."""
    gw = await make_gateway(result_wait_seconds=3.0)
    async with connect(url(gw)) as ws:
        ready = json.loads(await ws.recv())
        sid, secret = ready["session_id"], ready["resume_secret"]
        await send_audio(ws, clip("en_weather"))
        last_seq = (await read_until(ws, lambda m: m["type"] == "final"))[-1]["seq"]
        await send_audio(ws, clip("en_coffee"), speed=20)
        await ws.send(json.dumps({"type": "flush"}))
    async with connect(url(gw)) as ws:  # at once: the old connection is still detached
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "session_id": sid, "last_seq": last_seq, "resume_secret": secret}))
        await send_audio(ws, clip("en_train"))
        await asyncio.sleep(4.0)  # past the old connection's wait: it lets go of the session
        await send_audio(ws, clip("en_weather"))
        await ws.send(json.dumps({"type": "end"}))
        messages = await read_all(ws)
    finals = [m["segment_id"] for m in messages if m["type"] == "final"]
    assert finals == [f"{sid}:1", f"{sid}:2", f"{sid}:3"]
    assert messages[-1]["type"] == "done"


async def test_partials_off_and_word_timestamps_on_request(make_gateway: Any, stt_worker: Any) -> None:
    gw = await make_gateway()
    async with connect(url(gw)) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "config", "partials": False, "word_timestamps": True}))
        assert json.loads(await ws.recv())["partials"] is False
        await send_audio(ws, clip("en_weather"))
        await ws.send(json.dumps({"type": "end"}))
        messages = await read_all(ws)
    assert not [m for m in messages if m["type"] == "realtime"]
    final = next(m for m in messages if m["type"] == "final")
    words = final["words"]
    assert words and "sunny" in " ".join(w["word"].lower() for w in words)
    assert all(final["start"] - 0.5 <= w["start"] <= w["end"] <= final["end"] + 0.5 for w in words)


async def test_shutdown_is_bounded_when_redis_stops_answering() -> None:
    # A Redis that hangs (SIGSTOP: connections queue, nothing answers) must not hold a stop
    # through the client's retries: heartbeat, router and health server give up on their own.
    import os
    import signal

    from common.embedded_redis import EmbeddedRedis
    from common.settings import GatewaySettings
    from gateway.service import GatewayService

    with EmbeddedRedis() as redis:
        service = GatewayService(GatewaySettings(redis_url=redis.url, gateway_port=0, health_port=0))  # type: ignore[arg-type]
        await service.startup()
        assert redis.pid is not None
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            # Generous against this machine's speed; without the bounds it took minutes.
            await asyncio.wait_for(service.shutdown(), 30)
        finally:
            os.kill(redis.pid, signal.SIGCONT)


async def test_free_heap_goes_back_once_no_session_is_open(make_gateway: Any) -> None:
    # Fragmented free heap kept the gateway's RSS creeping over a soak (common.memtrim).
    from gateway import metrics

    # A soft limit it is always over (as in a test process holding models): the trim under
    # load as the session ends must not stand in for the idle one, which also collects.
    gw = await make_gateway(memory_trim_idle_seconds=0.2, memory_soft_limit_mb=1)
    idle_trims = metrics.MEMORY_TRIMS.labels("idle")
    before = idle_trims._value.get()
    async with connect(f"ws://127.0.0.1:{gw.port}/") as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await asyncio.sleep(0.6)  # three idle periods with the session open
        assert idle_trims._value.get() == before
    deadline = time.monotonic() + 10
    while idle_trims._value.get() == before:
        assert time.monotonic() < deadline, "no trim after the last session ended"
        await asyncio.sleep(0.05)
    assert idle_trims._value.get() == before + 1
