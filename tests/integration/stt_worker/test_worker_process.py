"""The STT worker as a real process on a real Redis with the real tiny.en model.

Covers the worker shell: consumption through the group, results on ``result_stream:{session}``,
finals with a target language on ``transcriptions``, the heartbeat, and a worker killed with
SIGKILL in the middle of a job whose final another worker then publishes, and (with base) a
job whose ``source_languages`` restricts detection, counted on /metrics.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from common import bus
from common.compat import timeout as compat_timeout
from common.embedded_redis import EmbeddedRedis, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "stt"


def load(name: str) -> np.ndarray:
    with wave.open(str(FIXTURES / f"{name}.wav")) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def start_worker(redis_url: str, index: int, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full_env = {
        **os.environ, "REDIS_URL": redis_url, "MODEL_SIZE": "tiny.en", "HEALTH_PORT": str(port),
        "WORKER_INDEX": str(index), "BEAM_SIZE": "1", "CLAIM_IDLE_MS": "1500", "LOG_LEVEL": "INFO", **env,
    }
    proc = subprocess.Popen([sys.executable, "-m", "stt_worker"], env=full_env, cwd=ROOT)
    return proc, port


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "worker exited"
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("worker not ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def job(session: str, index: int, pcm: np.ndarray, target: str | None = None) -> dict[bytes | str, bytes]:
    return bus.encode_audio_job(
        bus.AudioJob(kind="final", session_id=session, utterance_index=index,
                     segment_id=bus.segment_id(session, index), start=0.0, end=len(pcm) / 16000,
                     target_language=target, created_at=time.time()),
        pcm,
    )


class ResultStreams:
    """Results as the gateway reads them: the sessions' result streams, from their start."""

    def __init__(self, client: aioredis.Redis, *sessions: str) -> None:
        self.client = client
        self.last: dict[str, str | bytes] = {bus.result_stream_key(s): "0-0" for s in sessions}
        self.pending: list[Any] = []

    async def get(self, timeout: float) -> Any:
        """The next result, or None after ``timeout`` seconds without one."""
        if not self.pending:
            response = await self.client.xread(self.last, block=max(1, int(timeout * 1000)))  # type: ignore[arg-type]
            for key, entries in response or []:
                for entry_id, fields in entries:
                    self.last[key.decode()] = entry_id
                    if b"r" in fields:
                        self.pending.append(bus.decode_result(fields[b"r"]))
        return self.pending.pop(0) if self.pending else None


@pytest.fixture
def server() -> EmbeddedRedis:
    with EmbeddedRedis() as s:
        yield s


async def test_worker_transcribes_publishes_and_forwards_for_translation(server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(server.url)
    results = ResultStreams(client, "s1")
    proc, port = start_worker(server.url, 0, SESSION_TTL_SECONDS="120")
    try:
        await wait_ready(port, proc)
        beats = [k async for k in client.scan_iter("heartbeat:stt_worker:*")]
        assert len(beats) == 1
        await client.xadd(bus.AUDIO_JOBS, job("s1", 0, load("en_weather"), target="es"))
        result = None
        async with compat_timeout(30):
            while result is None:
                result = await results.get(1)
        assert isinstance(result, bus.FinalResult)
        assert "weather" in result.text.lower() and "sunny" in result.text.lower()
        assert result.segment_id == "s1:0" and result.translation_expected
        assert result.worker.endswith("-0")
        # The session's result stream lives as long as the session: SESSION_TTL_SECONDS.
        assert 0 < await client.ttl(bus.result_stream_key("s1")) <= 120
        entries = await client.xrange(bus.TRANSCRIPTIONS)
        forwarded = bus.decode_transcription_job(entries[0][1])
        assert forwarded.target_language == "es" and forwarded.text == result.text
        # Acknowledged and deleted after publishing (a round trip after the result: wait for it).
        async with compat_timeout(10):
            while await client.xlen(bus.AUDIO_JOBS):
                await asyncio.sleep(0.05)
        # A poison entry goes to dead_letters with its reason; the worker goes on.
        await client.xadd(bus.AUDIO_JOBS, {"meta": b"{not json", "audio": b"\x00\x00"})
        async with compat_timeout(10):
            while not await client.xlen(bus.DEAD_LETTERS):
                await asyncio.sleep(0.05)
        letter = (await client.xrange(bus.DEAD_LETTERS))[0][1]
        assert letter[b"reason"].startswith(b"malformed: audio job metadata invalid")
        assert letter[b"stream"] == b"audio_jobs"
        # Idle after its batches, the worker gives the allocator's free heap back (memtrim).
        import aiohttp

        async with aiohttp.ClientSession() as http, compat_timeout(15):
            while True:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
                if re.search(r'^worker_memory_trims_total\{when="idle"\} [1-9]', text, re.M):
                    break
                await asyncio.sleep(0.2)
        assert proc.poll() is None
    finally:
        stop(proc)
        await client.aclose()
    assert proc.returncode == 0  # graceful SIGTERM


async def test_sigkill_mid_job_loses_nothing(server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(server.url)
    results = ResultStreams(client, "k")
    # A long utterance (~24 s: eight clips) keeps the first worker busy long enough to kill it.
    long_pcm = np.concatenate([load(n) for n in ("en_weather", "en_meeting", "en_train", "en_coffee") * 2])
    a, port_a = start_worker(server.url, 0, CPU_THREADS="1", VAD_FILTER="false")
    b = None
    try:
        await wait_ready(port_a, a)
        await client.xadd(bus.AUDIO_JOBS, job("k", 0, long_pcm))
        async with compat_timeout(20):
            while True:  # wait until worker A holds the entry
                pending = await client.xpending(bus.AUDIO_JOBS, bus.STT_GROUP)
                if pending["pending"] == 1:
                    break
                await asyncio.sleep(0.02)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert await results.get(0.1) is None
        b, port_b = start_worker(server.url, 1)
        await wait_ready(port_b, b)
        final = None
        async with compat_timeout(60):
            while final is None:
                final = await results.get(1)
        assert isinstance(final, bus.FinalResult) and final.segment_id == "k:0"
        assert final.worker.endswith("-1")  # the second worker published it
        assert "weather" in final.text.lower()
        async with compat_timeout(10):
            while await client.xlen(bus.AUDIO_JOBS):
                await asyncio.sleep(0.1)
    finally:
        if b is not None:
            stop(b)
        stop(a)
        await client.aclose()


def _job_with_languages(session: str, pcm: np.ndarray, languages: list[str] | None) -> dict[bytes | str, bytes]:
    return bus.encode_audio_job(
        bus.AudioJob(kind="final", session_id=session, utterance_index=0, segment_id=bus.segment_id(session, 0),
                     start=0.0, end=len(pcm) / 16000, source_languages=languages, created_at=time.time()),
        pcm,
    )


def _counter(text: str, name: str, language: str) -> float:
    match = re.search(rf'^{name}\{{language="{language}"\}} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.model_output
async def test_session_set_restricts_detection_and_metrics_count_it(tmp_path, record_margin) -> None:
    """A job's ``source_languages`` restricts detection (base); /metrics counts it."""
    with EmbeddedRedis() as server:
        client = aioredis.Redis.from_url(server.url)
        results = ResultStreams(client, "free", "set")
        proc, port = start_worker(server.url, 0, MODEL_SIZE="base", MODEL_CACHE_DIR=str(tmp_path),
                                  SOURCE_LANGUAGES="all")
        try:
            await wait_ready(port, proc, timeout=180)
            pcm = load("trap_it_buongiorno")
            await client.xadd(bus.AUDIO_JOBS, _job_with_languages("free", pcm, None))
            await client.xadd(bus.AUDIO_JOBS, _job_with_languages("set", pcm, ["it", "fr", "de"]))
            finals: dict[str, bus.FinalResult] = {}
            async with compat_timeout(120):
                while len(finals) < 2:
                    result = await results.get(1)
                    if result is not None:
                        assert isinstance(result, bus.FinalResult)
                        finals[result.session_id] = result
            free, restricted = finals["free"], finals["set"]
            assert free.language not in ("it", "fr", "de") and free.language_probability_scope == "all"
            assert (restricted.language, restricted.language_probability_scope) == ("it", "set")
            assert restricted.language_outside_set == free.language
            assert restricted.language_probability is not None
            record_margin("p(it | it,fr,de)", restricted.language_probability, 0.7, "min")
            import aiohttp

            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
            assert _counter(text, "stt_language_detections_total", "it") == 1
            assert _counter(text, "stt_language_detections_total", str(free.language)) == 1
            assert _counter(text, "stt_language_outside_set_total", str(free.language)) == 1
        finally:
            stop(proc)
            await client.aclose()
