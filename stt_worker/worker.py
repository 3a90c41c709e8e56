"""The STT worker: reads ``audio_jobs``, transcribes with faster-whisper, publishes results.

Each batch from the shared consumer loop goes through the job selector (finals first; stale
partials skipped without inference), then one inference call in a worker thread (never on
the event loop; one batch at a time), then every result is published in one pipeline:
``final``/``realtime`` on ``result_stream:{session}``, and finals whose session wants a translation
also on ``transcriptions``. Only then does the consumer acknowledge the entries. A partial
names its audio on the session's audio stream instead of carrying it
(``stt_worker.session_audio``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from common import bus, tracing
from common.consumer import Entry
from common.redis_conn import ResultPipeline
from common.settings import SttSettings
from common.worker import StreamWorker
from stt_worker import metrics
from stt_worker.engine import EngineOptions, TranscribeRequest, Transcript, WhisperEngine
from stt_worker.scheduling import JobDescriptor, JobSelector
from stt_worker.session_audio import SessionAudioCache

log = logging.getLogger(__name__)

Job = tuple[bus.AudioJob, np.ndarray]


class SttWorker(StreamWorker[Job]):
    name = bus.STT_SERVICE
    group = bus.STT_GROUP

    def __init__(self, settings: SttSettings, model_path: str) -> None:
        super().__init__(settings)
        self.stt_settings = settings
        self.model_path = model_path
        self.engine: WhisperEngine | None = None
        self.selector = JobSelector(partial_max_age=settings.partial_max_age)
        self.session_audio = SessionAudioCache()  # what partials by reference name

    def job_streams(self) -> list[str]:
        return bus.audio_jobs_streams(self.stt_settings.shard_subset())

    def decode(self, fields: dict[Any, Any]) -> Job:
        return bus.decode_audio_job(fields)

    def load_model(self) -> None:
        s = self.stt_settings
        self.engine = WhisperEngine(
            EngineOptions(
                model=self.model_path,
                device=s.device,
                compute_type=s.compute_type,
                cpu_threads=s.cpu_threads,
                beam_size=s.beam_size,
                vad_filter=s.vad_filter,
                normalize_audio=s.normalize_audio,
                batched=s.stt_batched,
                encoder_window=s.encoder_window,
                source_languages=s.source_languages,
            )
        )
        metrics.MODEL_LOAD_SECONDS.set(self.engine.load_seconds)

    def health_details(self) -> dict[str, Any]:
        return {"model": self.model_path}

    async def handle(self, entries: list[Entry[Job]]) -> Sequence[str]:
        assert self.engine is not None and self.redis is not None
        now = time.time()
        descriptors = [
            JobDescriptor(
                key=e.id,
                kind=e.job[0].kind,
                session_id=e.job[0].session_id,
                utterance_index=e.job[0].utterance_index,
                partial_seq=e.job[0].partial_seq,
                created_at=e.job[0].created_at,
                priority=e.job[0].priority,
                speculative=e.job[0].speculative,
            )
            for e in entries
        ]
        selection = self.selector.select(descriptors, now)
        by_id = {e.id: e for e in entries}
        skipped = [(by_id[s.key], str(s.reason)) for s in selection.skipped]
        finals = [by_id[d.key] for d in selection.live_finals]
        partials = [by_id[d.key] for d in selection.partials]
        batch = [by_id[d.key] for d in selection.batch_finals]
        # Live finals first, in their own inference call, published before any partial runs;
        # pieces of uploaded files last.
        if finals:
            await self._run_and_publish(finals)
        if partials and await self._backlogged(len(entries)):
            # Partials are disposable: under a backlog they give way so finals keep their latency.
            skipped += [(e, "backlog") for e in partials]
            partials = []
        if partials:
            partials, missing = await self._with_session_audio(partials, now)
            skipped += [(e, bus.SKIP_AUDIO_MISSING) for e in missing]
        if partials:
            await self._run_and_publish(partials)
        if batch:
            await self._run_and_publish(batch)
        if skipped:
            async with ResultPipeline(self.redis) as pipe:
                for entry, reason in skipped:
                    metrics.SKIPPED_PARTIALS.labels(reason).inc()
                    metrics.JOBS.labels("partial", "skipped").inc()
                    job = entry.job[0]
                    # Tell the gateway the partial slot is free again; it forwards nothing.
                    bus.publish_result(pipe, self._skipped(job, reason), self.settings.session_ttl_seconds)
                await pipe.execute()
        return [e.id for e in entries]

    async def _with_session_audio(
        self, entries: list[Entry[Job]], now: float
    ) -> tuple[list[Entry[Job]], list[Entry[Job]]]:
        """Partials by reference with their audio from the session's stream, and those whose
        audio is gone (trimmed, expired): those are skipped, like a stale partial."""
        assert self.redis is not None
        redis = self.redis

        async def resolved(entry: Entry[Job]) -> Entry[Job] | None:
            job = entry.job[0]
            if job.audio_samples is None:
                return entry
            audio = await self.session_audio.audio(redis, job, now)
            return None if audio is None else replace(entry, job=(job, audio))

        # The batch's reads at once (one session each, as one partial is in flight per session).
        found = await asyncio.gather(*(resolved(e) for e in entries))
        ready = [e for e in found if e is not None]
        missing = [e for e, f in zip(entries, found, strict=True) if f is None]
        return ready, missing

    async def _backlogged(self, in_hand: int) -> bool:
        """True when a full batch of other jobs is already waiting behind this one."""
        assert self.consumer is not None
        waiting = await self.consumer.depth() - in_hand
        return waiting >= self.stt_settings.max_batch_size

    async def _run_and_publish(self, run: list[Entry[Job]]) -> None:
        assert self.redis is not None
        results = await self._transcribe(run)
        async with ResultPipeline(self.redis) as pipe:
            for entry, transcript in zip(run, results, strict=True):
                self._publish(pipe, entry.job[0], transcript)
            await pipe.execute()

    async def _transcribe(self, run: list[Entry[Job]]) -> list[Transcript]:
        assert self.engine is not None
        requests = [
            TranscribeRequest(
                audio=pcm.astype(np.float32) / 32768.0,
                language=job.source_language,
                language_hint=job.language_hint,
                prompt=job.prompt,
                word_timestamps=job.word_timestamps,
                partial=job.kind == "partial",
                task=job.task,
                source_languages=tuple(job.source_languages) if job.source_languages else None,
            )
            for job, pcm in (e.job for e in run)
        ]
        now = time.time()
        for job, _ in (e.job for e in run):
            metrics.QUEUE_WAIT_SECONDS.labels(job.kind).observe(max(0.0, now - job.created_at))
        kind = "final" if any(e.job[0].kind == "final" for e in run) else "partial"
        metrics.BATCH_SIZE.observe(len(requests))
        # One batch at a time per worker (the consumer loop awaits it): the model uses every
        # CPU thread it is given, so concurrent batches would only contend.
        started = time.perf_counter()
        started_wall = time.time()
        try:
            results = await asyncio.to_thread(self.engine.transcribe_batch, requests)
        finally:
            metrics.INFERENCE_SECONDS.labels(kind).observe(time.perf_counter() - started)
        self._batch_window = (started_wall, time.time())  # for each job's trace spans
        for e in run:
            metrics.JOBS.labels(e.job[0].kind, "done").inc()
        return results

    def _publish(self, pipe: Any, job: bus.AudioJob, t: Transcript) -> None:
        # Word times are seconds from the job's audio start; results carry session seconds.
        offset = job.start if job.audio_start is None else job.audio_start
        words = (
            [bus.Word(word=w.word, start=round(offset + w.start, 3), end=round(offset + w.end, 3),
                      probability=round(w.probability, 4)) for w in t.words]
            if t.words
            else None
        )
        if job.kind == "partial":
            partial = bus.PartialResult(
                session_id=job.session_id,
                segment_id=job.segment_id,
                utterance_index=job.utterance_index,
                partial_seq=job.partial_seq,
                text=t.text,
                language=t.language,
                language_probability=round(t.language_probability, 4),
                language_probability_scope=t.language_probability_scope,
                words=words,
                audio_start=offset,
                audio_end=job.end,
                worker=self.worker_name,
                inference_seconds=round(t.inference_seconds, 4),
            )
            bus.publish_result(pipe, partial, self.settings.session_ttl_seconds)
            return
        if t.language_probability_scope != "hint" and t.language:
            metrics.LANGUAGE_DETECTIONS.labels(t.language).inc()
            if t.language_outside_set:
                metrics.LANGUAGE_OUTSIDE_SET.labels(t.language_outside_set).inc()
        traceparent = self._trace_final(job, t)
        # An early (speculative) final is translated by the gateway once it is confirmed.
        wants_translation = bool(job.target_language and t.text.strip()) and not job.speculative
        final = bus.FinalResult(
            session_id=job.session_id,
            segment_id=job.segment_id,
            utterance_index=job.utterance_index,
            text=t.text,
            language=t.language,
            language_probability=round(t.language_probability, 4),
            language_probability_scope=t.language_probability_scope,
            language_outside_set=t.language_outside_set,
            start=job.start,
            end=job.end,
            words=words,
            worker=self.worker_name,
            inference_seconds=round(t.inference_seconds, 4),
            speech_end_at=job.speech_end_at,
            queued_at=job.created_at,
            translation_expected=wants_translation,
            speculative=job.speculative,
            traceparent=traceparent,
            commit=job.commit,
        )
        # The transcript store hears of finals from the gateway, which knows what was sent.
        bus.publish_result(pipe, final, self.settings.session_ttl_seconds)
        if wants_translation:
            assert job.target_language is not None
            pipe.xadd(
                bus.transcriptions_stream(job.session_id),
                bus.encode_transcription_job(
                    bus.TranscriptionJob(
                        session_id=job.session_id,
                        segment_id=job.segment_id,
                        utterance_index=job.utterance_index,
                        text=t.text,
                        source_language=t.language,
                        target_language=job.target_language,
                        created_at=time.time(),
                        speech_end_at=job.speech_end_at,
                        traceparent=traceparent,
                    )
                ),
            )

    def _trace_final(self, job: bus.AudioJob, t: Transcript) -> str | None:
        """The job's wait in audio_jobs and its share of the batch, as spans of its trace."""
        if job.traceparent is None:
            return None
        began, ended = getattr(self, "_batch_window", (time.time(), time.time()))
        waited = tracing.record_span("bus.audio_jobs", job.traceparent, start=job.created_at, end=began,
                                     kind="consumer")
        return tracing.record_span("stt.transcribe", waited, start=began, end=ended, attributes={
            "worker": self.worker_name, "language": t.language or "", "audio_seconds": round(job.end - job.start, 3),
        })

    def _skipped(self, job: bus.AudioJob, reason: str) -> bus.PartialResult:
        return bus.PartialResult(
            session_id=job.session_id,
            segment_id=job.segment_id,
            utterance_index=job.utterance_index,
            partial_seq=job.partial_seq,
            text="",
            worker=self.worker_name,
            skipped=True,
            skip_reason=reason,
        )
