"""The Redis side of one connection: its session's writes and jobs, in order.

Log entries therefore land in seq order (they used to be concurrent tasks). What was queued
together (a final's log write and the turn's end, a job and its counter) goes in one pipeline,
one round trip, on a single node, writes queued one after another as one script call; on a
cluster, or when there is one action, one at a time. A write refused because another
connection claimed the session, and a job Redis would not take, are handed back to the
connection, whose core decides what they mean. What the transcript store must know goes to its
stream from here too (``gateway.transcript_feed``): the session's owner on each config write,
and each final and translation as it is logged, i.e. as the client got it.

Batches run one at a time (``_running``), each taking the oldest queued actions, so order holds
whoever runs them: the writer task, or a connection that has just queued an audio job and
calls :meth:`send_now`, so the job leaves without waiting for the writer task's turn on the
event loop (a quarter of a millisecond on the flush -> final path).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from common import bus, tracing
from common.redis_conn import RETRYABLE
from gateway import metrics, transcript_feed
from gateway import session_actions as sa
from gateway.context import GatewayContext
from gateway.sessions import SessionConfig

log = logging.getLogger(__name__)

MAX_BATCH = 64  # actions per pipeline


class Fenced:
    """A write was refused: another connection has claimed the session."""


@dataclass(frozen=True)
class Failed:
    """A write or job Redis would not take."""

    action: sa.Action


class SessionWriter:
    def __init__(self, ctx: GatewayContext, holder: str, session_id: Callable[[], str],
                 report: Callable[[str, Fenced | Failed], None], subject: Callable[[], str | None]) -> None:
        self._ctx = ctx
        self._subject = subject  # the token's subject (auth on), for the store's owner record
        self._holder = holder
        self._session_id = session_id  # the session the connection holds now (a resume changes it)
        self._report = report  # (session id, what happened), back to the connection's core
        self._queue: deque[sa.Action] = deque()
        self._queued = asyncio.Event()  # set while the queue holds something, or on stop
        self._running = asyncio.Lock()  # one batch at a time
        self._stopping = False

    def put(self, action: sa.Action) -> None:
        self._queue.append(action)
        self._queued.set()

    def stop(self) -> None:
        """Finish what is queued, then end :meth:`run`."""
        self._stopping = True
        self._queued.set()

    async def run(self) -> None:
        while True:
            await self._queued.wait()
            async with self._running:
                await self._run_batch()
                if self._stopping and not self._queue:
                    return

    async def send_now(self) -> None:
        """Run what is queued in the caller's task, unless a batch is in flight (the writer
        task then takes it next)."""
        if not self._running.locked():
            async with self._running:
                await self._run_batch()

    async def _run_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
        if not self._queue and not self._stopping:
            self._queued.clear()
        if not bus.layout().cluster and (len(batch) > 1 or any(_appends_audio(a) for a in batch)):
            await self._run_pipelined(batch)
        else:
            for action in batch:
                await self._run_one(action)

    async def _run_one(self, action: sa.Action) -> None:
        ctx, session_id = self._ctx, self._session_id()
        try:
            if isinstance(action, sa.Write):
                if not await ctx.store.write(session_id, self._holder, action.fields, action.message):
                    self._report(session_id, Fenced())
                else:
                    await self.feed_store(session_id, action.fields, action.message)
            elif isinstance(action, sa.Note):
                await ctx.router.note(session_id, action.text)
            else:
                if _appends_audio(action):  # a cluster: its audio first, then (another slot) the job
                    async with ctx.redis.pipeline(transaction=False) as pipe:
                        self._queue_session_audio(pipe, action)
                        await pipe.execute()
                if (command := self._job_command(ctx.redis, action)) is not None:
                    await command
        except RETRYABLE as exc:
            log.warning("a session write failed (%s): %s", type(action).__name__, exc.__class__.__name__)
            self._report(session_id, Failed(action))

    async def _run_pipelined(self, batch: list[sa.Action]) -> None:
        """The batch in one round trip, in order; writes queued one after another (a final's
        and the turn end's) as one script call. A write script Redis no longer has (after a
        restart) is written again one by one, which loads it; the rest was applied."""
        ctx, session_id = self._ctx, self._session_id()
        async with ctx.redis.pipeline(transaction=False) as pipe:
            replies: list[tuple[int, _Group]] = []  # (index of its first reply, what it was)
            for group in _groups(batch):
                replies.append((len(pipe), group))
                if isinstance(group, list):
                    fields: dict[str, Any] = {}
                    for write in group:
                        fields.update(write.fields)  # a later write's counters are the newer
                    messages = [w.message for w in group if w.message is not None]
                    ctx.store.queue_write(pipe, session_id, self._holder, fields, messages)
                    # The store's copy goes even if the write is fenced: the client was sent it
                    # (the store is idempotent on the segment).
                    for write in group:
                        for record in self._records(session_id, write.fields, write.message):
                            bus.add_transcript(pipe, record)
                elif isinstance(group, sa.Note):
                    ctx.router.queue_note(pipe, session_id, group.text)
                else:
                    if _appends_audio(group):
                        # Before the job, in the same round trip: a worker reading the job
                        # finds its audio on the session's stream.
                        self._queue_session_audio(pipe, group)
                        replies[-1] = (len(pipe), group)  # the job's reply is the one to check
                    self._job_command(pipe, group)
            try:
                results = await pipe.execute(raise_on_error=False)
            except RETRYABLE as exc:
                log.warning("session writes failed (%d): %s", len(batch), exc.__class__.__name__)
                for action in batch:
                    self._report(session_id, Failed(action))
                return
        for index, group in replies:
            reply, actions = results[index], group if isinstance(group, list) else [group]
            if isinstance(group, list) and isinstance(reply, NoScriptError):
                for write in group:
                    if not await ctx.store.write(session_id, self._holder, write.fields, write.message):
                        self._report(session_id, Fenced())
                        break
            elif isinstance(reply, Exception):
                log.warning("a session write failed (%s): %s", type(actions[0]).__name__, reply.__class__.__name__)
                for action in actions:
                    self._report(session_id, Failed(action))
            elif isinstance(group, list) and not reply:
                self._report(session_id, Fenced())

    def _job_command(self, client: Any, action: sa.Action) -> Any:
        """A job's XADD on ``client`` (awaitable) or a pipeline (queued); None for other actions."""
        if isinstance(action, sa.QueueAudio):
            job = action.job
            if job.kind == "final":  # one trace per final job (common/tracing.py); partials are not traced
                job = tracing.start_utterance(job, {"segment_id": job.segment_id})
            audio = action.audio if job.audio_samples is None else action.audio[:0]  # by reference: none
            metrics.JOB_AUDIO_SECONDS.labels(job.kind).inc(len(audio) / 16000)
            return client.xadd(bus.audio_jobs_stream(job.session_id), bus.encode_audio_job(job, audio))
        if isinstance(action, sa.QueueTranslation):
            text_job = action.job
            return client.xadd(bus.transcriptions_stream(text_job.session_id), bus.encode_transcription_job(text_job))
        return None

    def _queue_session_audio(self, pipe: Any, action: sa.Action) -> None:
        """The part of a partial's audio the session's audio stream does not have yet."""
        assert isinstance(action, sa.QueueAudio)
        job, append_from = action.job, action.append_from
        assert job.audio_samples is not None and append_from is not None
        new = action.audio[max(0, append_from - job.audio_samples[0]) :]
        metrics.JOB_AUDIO_SECONDS.labels("session_audio").inc(len(new) / 16000)
        if len(new):
            s = self._ctx.settings
            # Without streaming commits a partial names its whole utterance so far.
            longest = s.max_uncommitted_seconds if s.streaming_commits else s.max_segment_seconds
            bus.add_session_audio(pipe, job.session_id, append_from, new, s.session_ttl_seconds,
                                  bus.session_audio_maxlen(longest, s.stt_send_interval))

    async def feed_store(self, session_id: str, fields: dict[str, Any], message: dict[str, Any] | None) -> None:
        """The transcript store's copy of a write, one XADD per record."""
        for record in self._records(session_id, fields, message):
            await bus.add_transcript(self._ctx.redis, record)

    def _records(self, session_id: str, fields: dict[str, Any],
                 message: dict[str, Any] | None) -> list[bus.TranscriptRecord]:
        """The owner on a config write, each final and translation sent."""
        records: list[bus.TranscriptRecord] = []
        config = fields.get("config")
        if isinstance(config, SessionConfig):
            records.append(transcript_feed.session_record(session_id, config, self._subject(), self._ctx.name))
        if message is not None and (record := transcript_feed.result_record(session_id, message)) is not None:
            records.append(record)
        return records


def _appends_audio(action: sa.Action) -> bool:
    """A partial by reference with audio the session's stream does not have yet."""
    return isinstance(action, sa.QueueAudio) and action.append_from is not None


#: One script call's writes (consecutive writes of a batch), or any other action alone.
_Group = list[sa.Write] | sa.Action


def _groups(batch: list[sa.Action]) -> list[_Group]:
    """``batch`` in order, each run of consecutive writes as one list."""
    groups: list[_Group] = []
    for action in batch:
        if not isinstance(action, sa.Write):
            groups.append(action)
        elif groups and isinstance(groups[-1], list):
            groups[-1].append(action)
        else:
            groups.append([action])
    return groups
