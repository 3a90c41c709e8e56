"""The translation worker: reads ``transcriptions``, translates, publishes ``translation``.

Batches from the shared consumer loop become one ``translate`` call on the manager (grouped
by language pair inside, one ``translate_batch`` per group) in a worker thread. Each item
ends as a ``translation`` on ``result_stream:{session}``, or as an ``error`` carrying its
``segment_id`` (``translation_unavailable``, ``unsupported_language_pair``) so the gateway
stops waiting for it. The worker runs without a model: ``/health`` says ``degraded`` and why,
``/ready`` answers 503, and finals keep flowing through the STT workers meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from common import bus, tracing
from common.consumer import Entry
from common.memdebug import rss_bytes
from common.redis_conn import ResultPipeline
from common.settings import TranslationSettings
from common.worker import StreamWorker
from translation_worker.engines import TranslationItem
from translation_worker.manager import ManagerOptions, TranslationManager

log = logging.getLogger(__name__)

TRANSLATIONS = Counter("translation_items_total", "Translation items by outcome", ["outcome"])
TRANSLATE_SECONDS = Histogram(
    "translation_batch_seconds", "Wall time of one translate call",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
BATCH_SIZE = Histogram("translation_batch_size", "Items per translate call", buckets=(1, 2, 4, 8, 16, 32))
RSS = Gauge("translation_worker_rss_bytes", "Resident set size of the translation worker")
MODEL_LOADED = Gauge("translation_model_loaded", "1 while the translation model is in memory")


class TranslationWorker(StreamWorker[bus.TranscriptionJob]):
    name = bus.TRANSLATION_SERVICE
    group = bus.TRANSLATION_GROUP

    def __init__(self, settings: TranslationSettings, manager: TranslationManager | None = None) -> None:
        super().__init__(settings)
        self.manager = manager or TranslationManager(ManagerOptions.from_settings(settings))
        self._idle_task: asyncio.Task[None] | None = None

    def job_streams(self) -> list[str]:
        return bus.transcriptions_streams(self.settings.shard_subset())

    def decode(self, fields: dict[Any, Any]) -> bus.TranscriptionJob:
        return bus.decode_transcription_job(fields)

    def load_model(self) -> None:
        # Unavailable is not fatal: the worker stays up, degraded, and tells each session once.
        self.manager.preload()
        self._update_health()

    def _update_health(self) -> None:
        ok, reason = self.manager.status()
        self.health.set_degraded("translation_model", None if ok else reason)
        MODEL_LOADED.set(1 if self.manager.is_loaded else 0)
        RSS.set(rss_bytes())

    async def _check_model(self) -> tuple[bool, str]:
        ok, reason = self.manager.status()
        if not ok:
            return False, reason or "translation model unavailable"
        return True, "loaded" if self.manager.is_loaded else "unloaded while idle; loads on demand"

    def health_details(self) -> dict[str, Any]:
        status = self.manager.details()
        return {
            "translation_model": status.model_path,
            "engine": status.kind,
            "loaded": status.loaded,
            "loads": status.loads,
            "unloads": status.unloads,
            "loaded_pairs": status.loaded_pairs,
        }

    async def startup(self) -> None:
        await super().startup()
        self._idle_task = asyncio.create_task(self._idle_unloader(), name="idle-unload")

    async def _idle_unloader(self) -> None:
        interval = min(30.0, max(1.0, self.manager.options.idle_unload_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(self.manager.maybe_unload):
                    log.info("translation model unloaded after idling")
            except Exception:
                log.exception("idle unload failed")
            self._update_health()

    async def shutdown(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        await super().shutdown()

    async def handle(self, entries: list[Entry[bus.TranscriptionJob]]) -> Sequence[str]:
        assert self.redis is not None
        jobs = [e.job for e in entries]
        items = [TranslationItem(j.text, j.source_language, j.target_language) for j in jobs]
        BATCH_SIZE.observe(len(items))
        started = time.perf_counter()
        started_wall = time.time()
        outcomes = await asyncio.to_thread(self.manager.translate, items)
        TRANSLATE_SECONDS.observe(time.perf_counter() - started)
        ended_wall = time.time()
        async with ResultPipeline(self.redis) as pipe:
            for job, outcome in zip(jobs, outcomes, strict=True):
                traceparent = tracing.record_span(
                    "translation.translate", job.traceparent, start=started_wall, end=ended_wall,
                    attributes={"worker": self.worker_name, "ok": outcome.ok, "target": job.target_language},
                )
                if outcome.ok:
                    TRANSLATIONS.labels("ok").inc()
                    result: bus.TranslationResult | bus.ErrorResult = bus.TranslationResult(
                        session_id=job.session_id,
                        segment_id=job.segment_id,
                        utterance_index=job.utterance_index,
                        text=outcome.text or "",
                        source_language=job.source_language,
                        target_language=job.target_language,
                        worker=self.worker_name,
                        traceparent=traceparent,
                    )
                else:
                    TRANSLATIONS.labels(outcome.error_code or "error").inc()
                    result = bus.ErrorResult(
                        session_id=job.session_id,
                        segment_id=job.segment_id,
                        utterance_index=job.utterance_index,
                        code=outcome.error_code or "translation_failed",
                        message=outcome.error_message or "translation failed",
                        traceparent=traceparent,
                    )
                bus.publish_result(pipe, result, self.settings.session_ttl_seconds)
            await pipe.execute()
        self._update_health()
        return [e.id for e in entries]
