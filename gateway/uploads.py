"""Transcribing an uploaded file on the live pipeline's STT workers.

The file is cut into pieces by the same segmenter (WebRTC + Silero VAD) the live sessions use,
with a shorter silence (``UPLOAD_SILENCE_SECONDS``) so a long file gives many pieces. Each piece
is an ordinary final job on ``audio_jobs`` with ``priority="batch"``: every STT worker takes
pieces, so a long file spreads over all of them, and the workers run live finals and partials
first. The gateway keeps only ``UPLOAD_JOBS_PER_WORKER`` pieces per live worker queued at a
time, so a live session's job is never behind a whole file in the stream either. Results come
back over the same result router as a live session's, under a session id of the upload's own;
the gateway only assembles them in order.

A piece whose result does not come back in time (a result lost with a pub/sub connection, a
worker that died after its reclaim window) is queued again; the final's ``segment_id`` makes a
duplicate harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from common import bus
from common.redis_conn import RETRYABLE
from common.settings import GatewaySettings
from gateway.context import GatewayContext
from gateway.limits import Refusal
from gateway.segmenter import Segmenter, SegmenterOptions, UtteranceReady
from gateway.vad import SileroVad

log = logging.getLogger(__name__)

CHUNK = 16000  # samples fed to the segmenter at a time
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Piece:
    """One VAD piece of a file: speech from ``start`` to ``end``; its audio begins at ``audio_start``."""

    index: int
    start: float
    end: float
    audio_start: float
    audio: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


@dataclass(frozen=True)
class UploadOptions:
    language: str | None = None
    prompt: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = False


class UploadFailed(RuntimeError):
    """A piece got no result after every attempt (no STT worker is taking jobs)."""


class QuotaRefused(RuntimeError):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def cut_pieces(pcm: np.ndarray, settings: GatewaySettings, silero: SileroVad | None) -> list[Piece]:
    """The speech of a whole file as pieces, in order (blocking: run it in a thread)."""
    segmenter = Segmenter(
        SegmenterOptions(
            sample_rate=16000,
            webrtc_sensitivity=settings.webrtc_sensitivity,
            silero_sensitivity=settings.silero_sensitivity,
            silence_threshold_seconds=settings.upload_silence_seconds,
            pre_speech_buffer_seconds=min(settings.pre_speech_buffer_seconds, 0.5),
            max_segment_seconds=settings.max_segment_seconds,
            min_speech_seconds=settings.min_speech_seconds,
            use_silero=silero is not None,
        ),
        silero,
    )
    ready: list[UtteranceReady] = []
    for i in range(0, len(pcm), CHUNK):
        ready += [e for e in segmenter.feed(pcm[i : i + CHUNK]) if isinstance(e, UtteranceReady)]
    ready += [e for e in segmenter.flush() if isinstance(e, UtteranceReady)]
    return [Piece(k, u.start, u.end, u.audio_start, u.audio) for k, u in enumerate(ready)]


ChargeAudio = Callable[[float], Awaitable[Refusal | None]]


class UploadRunner:
    """Queues the pieces of one file with a bounded window and yields their finals in order."""

    def __init__(self, ctx: GatewayContext, options: UploadOptions, *, charge: ChargeAudio | None = None,
                 piece_timeout: float = 60.0) -> None:
        self.ctx = ctx
        self.options = options
        self.charge = charge
        self.piece_timeout = piece_timeout
        self.upload_id = uuid.uuid4().hex
        self.session_id = bus.upload_session_id(self.upload_id)
        self._results: dict[int, bus.FinalResult] = {}
        self._arrived = asyncio.Event()
        self._following = 0  # the next index to yield; a duplicate of an earlier one is dropped

    def _on_result(self, result: bus.PartialResult | bus.FinalResult | bus.TranslationResult | bus.ErrorResult | str,
                   ) -> None:
        if (isinstance(result, bus.FinalResult) and result.utterance_index >= self._following
                and result.utterance_index not in self._results):
            self._results[result.utterance_index] = result
            self._arrived.set()

    async def window(self) -> int:
        """Pieces queued at once: a few per STT worker alive (by heartbeat), at least one worker's worth."""
        workers = 0
        try:
            async for _ in self.ctx.redis.scan_iter(match=bus.heartbeat_pattern(bus.STT_SERVICE), count=100):
                workers += 1
        except RETRYABLE as exc:
            log.warning("counting STT workers failed: %s", exc)
        return self.ctx.settings.upload_jobs_per_worker * max(1, workers)

    async def run(self, pieces: list[Piece]) -> AsyncIterator[bus.FinalResult]:
        """Finals of ``pieces`` in order, as soon as each and every earlier one is in."""
        await self.ctx.router.attach(self.session_id, self.upload_id, self._on_result)
        try:
            window = await self.window()
            queued: dict[int, tuple[float, int]] = {}  # index -> (queued at, attempts)
            pending = iter(pieces)
            while self._following < len(pieces):
                following = self._following
                for index in [i for i in queued if i in self._results]:
                    del queued[index]  # done: its place in the window is free
                while len(queued) < window and (piece := next(pending, None)) is not None:
                    if self.charge is not None:
                        await self._charge(piece, first=piece.index == 0)
                    await self._queue(piece)
                    queued[piece.index] = (time.monotonic(), 1)
                if following in self._results:
                    self._following += 1
                    yield self._results.pop(following)
                    continue
                # No await since the check above: a result cannot slip in between.
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), 1.0)
                except asyncio.TimeoutError:
                    await self._requeue_late(pieces, queued)
        finally:
            self.ctx.router.detach(self.session_id, self.upload_id)

    async def _charge(self, piece: Piece, *, first: bool) -> None:
        """The subject's audio quota, paced: a refused first piece is a 429; later pieces wait
        for the next minute's allowance."""
        assert self.charge is not None
        while True:
            refusal = await self.charge(piece.seconds)
            if refusal is None:
                return
            if first:
                raise QuotaRefused(refusal)
            await asyncio.sleep(refusal.retry_after or 1.0)  # a rate limit's wait, not a readiness poll

    async def _requeue_late(self, pieces: list[Piece], queued: dict[int, tuple[float, int]]) -> None:
        now = time.monotonic()
        for index, (at, attempts) in list(queued.items()):
            if index in self._results or now - at < self.piece_timeout + pieces[index].seconds:
                continue
            if attempts >= MAX_ATTEMPTS:
                raise UploadFailed(f"piece {index} of the file got no transcript after {attempts} attempts")
            log.warning("upload %s: piece %d late; queued again", self.upload_id[:8], index)
            await self._queue(pieces[index])
            queued[index] = (now, attempts + 1)

    async def _queue(self, piece: Piece) -> None:
        o = self.options
        job = bus.AudioJob(
            kind="final",
            session_id=self.session_id,
            utterance_index=piece.index,
            segment_id=bus.segment_id(self.session_id, piece.index),
            start=round(piece.start, 3),
            end=round(piece.end, 3),
            audio_start=round(piece.audio_start, 3),
            source_language=o.language,
            prompt=o.prompt,
            word_timestamps=o.word_timestamps,
            created_at=time.time(),
            priority="batch",
            task=o.task,
        )
        await self.ctx.redis.xadd(bus.audio_jobs_stream(self.session_id), bus.encode_audio_job(job, piece.audio))
