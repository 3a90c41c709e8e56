"""One utterance gives one connected trace across the gateway, the STT worker and the
translation worker: the trace context travels in the bus messages (``traceparent``).

All three services run in this process on a real Redis, with the real tiny.en model and the
tiny random-weight translation model, and the SDK's in-memory exporter collects the spans.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.asyncio.client import connect

from common import tracing
from common.compat import timeout as compat_timeout
from common.embedded_redis import EmbeddedRedis
from common.lifecycle import Service
from common.settings import GatewaySettings, SttSettings, TranslationSettings

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "gateway" / "speech_piper.wav"
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """One SDK provider for the process (OpenTelemetry allows setting it once)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    tracing.install_provider(provider)


async def start(service: Service) -> asyncio.Task[None]:
    await service.startup()
    return asyncio.create_task(service.main_loop())


@pytest.fixture
async def pipeline(tiny_translation_model: Path) -> AsyncIterator[str]:
    """Gateway, STT worker and translation worker in this event loop; yields the WebSocket URL."""
    from gateway.service import GatewayService
    from stt_worker.models import resolve_model
    from stt_worker.worker import SttWorker
    from translation_worker.worker import TranslationWorker

    with EmbeddedRedis() as redis:
        common: dict[str, Any] = {"redis_url": redis.url, "health_port": 0, "log_level": "WARNING"}
        gateway = GatewayService(GatewaySettings(**common, gateway_port=0, silence_threshold_seconds=0.8,
                                                 pre_speech_buffer_seconds=0.3,
                                                 early_final_seconds=0.0))  # one final job per utterance
        stt_settings = SttSettings(**common, model_size="tiny.en", beam_size=1, cpu_threads=2)
        stt = SttWorker(stt_settings, resolve_model("tiny.en", stt_settings.model_cache_dir).path_or_name)
        translator = TranslationWorker(TranslationSettings(**common, translation_model=str(tiny_translation_model)))
        services: list[Service] = [stt, translator, gateway]
        tasks = [await start(s) for s in services]
        try:
            yield f"ws://127.0.0.1:{gateway.port}/"
        finally:
            for service in reversed(services):
                service.request_stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            for service in reversed(services):
                await service.shutdown()


async def stream(url: str) -> list[dict[str, Any]]:
    with wave.open(str(FIXTURE)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        rate = wav.getframerate()
    messages: list[dict[str, Any]] = []
    async with connect(url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "config", "source_language": "en", "target_language": "es",
                                  "partials": False}))
        step = int(rate * 0.05)
        for i in range(0, len(pcm), step):
            await ws.send(pcm[i : i + step].tobytes())
            await asyncio.sleep(0.01)  # faster than real time; the segmenter only sees audio time
        await ws.send(json.dumps({"type": "end"}))
        async with compat_timeout(120):
            async for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message["type"] == "done":
                    break
    return messages


def by_trace(spans: list[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    out: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.context is not None
        out.setdefault(span.context.trace_id, []).append(span)
    return out


async def test_one_utterance_gives_one_connected_trace(pipeline: str) -> None:
    EXPORTER.clear()
    messages = await stream(pipeline)
    finals = [m for m in messages if m["type"] == "final" and m["text"].strip()]
    translations = [m for m in messages if m["type"] == "translation"]
    assert finals and len(translations) == len(finals), messages

    async with compat_timeout(10):  # the last delivery span ends as its message goes out
        while sum(s.name == "gateway.deliver" for s in EXPORTER.get_finished_spans()) < 2 * len(finals):
            await asyncio.sleep(0.05)
    spans = list(EXPORTER.get_finished_spans())
    traces = by_trace(spans)
    roots = [s for s in spans if s.name == "gateway.utterance"]
    segment_ids = {s.attributes["segment_id"] for s in roots if s.attributes}
    assert {f["segment_id"] for f in finals} <= segment_ids
    for root in roots:
        assert root.context is not None and root.parent is None
        if root.attributes is None or root.attributes["segment_id"] not in {f["segment_id"] for f in finals}:
            continue
        trace = traces[root.context.trace_id]
        names = sorted(s.name for s in trace)
        # gateway -> stream -> STT -> translation -> delivery (final and translation)
        assert names == sorted(["gateway.utterance", "bus.audio_jobs", "stt.transcribe",
                                "translation.translate", "gateway.deliver", "gateway.deliver"]), names
        ids = {s.context.span_id for s in trace if s.context is not None}
        for span in trace:
            if span is not root:
                assert span.parent is not None and span.parent.span_id in ids, f"{span.name} is not connected"
        parent_of = {s.name: s.parent.span_id for s in trace if s.parent is not None and s.name != "gateway.deliver"}
        span_id = {s.name: s.context.span_id for s in trace if s.context is not None}
        assert parent_of["bus.audio_jobs"] == span_id["gateway.utterance"]
        assert parent_of["stt.transcribe"] == span_id["bus.audio_jobs"]
        assert parent_of["translation.translate"] == span_id["stt.transcribe"]
    # Each traced utterance is its own trace: as many traces as utterance roots.
    assert len(traces) == len(roots)
