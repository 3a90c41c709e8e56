"""The Redis side of one connection: its session's writes and jobs, one at a time, in order.

Log entries therefore land in seq order (they used to be concurrent tasks). A write refused
because another connection claimed the session, and a job Redis would not take, are handed
back to the connection, whose core decides what they mean. What the transcript store must know
goes to its stream from here too (``gateway.transcript_feed``): the session's owner on each
config write, and each final and translation as it is logged, i.e. as the client got it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import bus, tracing
from common.redis_conn import RETRYABLE
from gateway import metrics, transcript_feed
from gateway import session_core as sc
from gateway.context import GatewayContext
from gateway.sessions import SessionConfig

log = logging.getLogger(__name__)


class Fenced:
    """A write was refused: another connection has claimed the session."""


@dataclass(frozen=True)
class Failed:
    """A write or job Redis would not take."""

    action: sc.Action


class SessionWriter:
    def __init__(self, ctx: GatewayContext, holder: str, session_id: Callable[[], str],
                 report: Callable[[str, Fenced | Failed], None], subject: Callable[[], str | None]) -> None:
        self._ctx = ctx
        self._subject = subject  # the token's subject (auth on), for the store's owner record
        self._holder = holder
        self._session_id = session_id  # the session the connection holds now (a resume changes it)
        self._report = report  # (session id, what happened), back to the connection's core
        self._queue: asyncio.Queue[sc.Action | None] = asyncio.Queue()

    def put(self, action: sc.Action) -> None:
        self._queue.put_nowait(action)

    def stop(self) -> None:
        """Finish what is queued, then end :meth:`run`."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        ctx = self._ctx
        while (action := await self._queue.get()) is not None:
            session_id = self._session_id()
            try:
                if isinstance(action, sc.Write):
                    if not await ctx.store.write(session_id, self._holder, action.fields, action.message):
                        self._report(session_id, Fenced())
                    else:
                        await self.feed_store(session_id, action.fields, action.message)
                elif isinstance(action, sc.QueueAudio):
                    job = action.job
                    if job.kind == "final":  # one trace per final job (common/tracing.py); partials are not traced
                        job = tracing.start_utterance(job, {"segment_id": job.segment_id})
                    await ctx.redis.xadd(bus.audio_jobs_stream(job.session_id), bus.encode_audio_job(job, action.audio))
                    metrics.JOB_AUDIO_SECONDS.labels(job.kind).inc(len(action.audio) / 16000)
                elif isinstance(action, sc.QueueTranslation):
                    await ctx.redis.xadd(bus.transcriptions_stream(action.job.session_id),
                                         bus.encode_transcription_job(action.job))
                elif isinstance(action, sc.Note):
                    await ctx.router.note(session_id, action.text)
            except RETRYABLE as exc:
                log.warning("a session write failed (%s): %s", type(action).__name__, exc.__class__.__name__)
                self._report(session_id, Failed(action))

    async def feed_store(self, session_id: str, fields: dict[str, Any], message: dict[str, Any] | None) -> None:
        """The transcript store's copy: the owner on a config write, each final and translation sent."""
        records: list[bus.TranscriptRecord] = []
        config = fields.get("config")
        if isinstance(config, SessionConfig):
            records.append(transcript_feed.session_record(session_id, config, self._subject(), self._ctx.name))
        if message is not None and (record := transcript_feed.result_record(session_id, message)) is not None:
            records.append(record)
        for record in records:
            await bus.add_transcript(self._ctx.redis, record)
