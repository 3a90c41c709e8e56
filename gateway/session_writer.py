"""The Redis side of one connection: its session's writes and jobs, one at a time, in order.

Log entries therefore land in seq order (they used to be concurrent tasks). A write refused
because another connection claimed the session, and a job Redis would not take, are handed
back to the connection, whose core decides what they mean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from common import bus
from common.redis_conn import RETRYABLE
from gateway import session_core as sc
from gateway.context import GatewayContext

log = logging.getLogger(__name__)


class Fenced:
    """A write was refused: another connection has claimed the session."""


@dataclass(frozen=True)
class Failed:
    """A write or job Redis would not take."""

    action: sc.Action


class SessionWriter:
    def __init__(self, ctx: GatewayContext, holder: str, session_id: Callable[[], str],
                 report: Callable[[str, Fenced | Failed], None]) -> None:
        self._ctx = ctx
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
                elif isinstance(action, sc.QueueAudio):
                    await ctx.redis.xadd(bus.AUDIO_JOBS, bus.encode_audio_job(action.job, action.audio))
                elif isinstance(action, sc.QueueTranslation):
                    await ctx.redis.xadd(bus.TRANSCRIPTIONS, bus.encode_transcription_job(action.job))
                elif isinstance(action, sc.Note):
                    await ctx.router.note(session_id, action.text)
            except RETRYABLE as exc:
                log.warning("a session write failed (%s): %s", type(action).__name__, exc.__class__.__name__)
                self._report(session_id, Failed(action))
