"""Carrying out a session core's actions: messages to the client's outbox, writes, jobs and
notes to the session's writer, closes.

Two ways in. :meth:`Effects.run` does any list, waiting where an action needs it (a replay
at the client's pace, a close that sends what is queued first). :meth:`Effects.run_now` does
a list that needs no waiting, without leaving the caller's turn on the event loop: the
router hands results over that way, so a final's send is the next task to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from common import bus
from gateway import metrics
from gateway import session_actions as sa
from gateway.outbox import Outbox
from gateway.session_writer import SessionWriter

log = logging.getLogger(__name__)


def needs_no_wait(actions: list[sa.Action]) -> bool:
    """Whether :meth:`Effects.run_now` can do all of ``actions``."""
    return all(isinstance(a, sa.Write | sa.QueueTranslation | sa.Note) or (isinstance(a, sa.Send) and not a.replay)
               for a in actions)


def _for_writer(action: sa.Action) -> bool:
    return isinstance(action, sa.Write | sa.QueueAudio | sa.QueueTranslation | sa.Note)


class Effects:
    def __init__(self, outbox: Outbox, writer: SessionWriter, detach: Callable[[], list[sa.Action]]) -> None:
        self._outbox = outbox
        self._writer = writer
        self._detach = detach  # the core's detach: what a client that is not reading leaves behind

    def run_now(self, actions: list[sa.Action]) -> list[sa.Action]:
        """Do ``actions`` (:func:`needs_no_wait`); what is left when the client is not taking
        its messages, for :meth:`run` to deal with."""
        for i, action in enumerate(actions):
            if not isinstance(action, sa.Send):
                self._writer.put(action)
            elif not self._outbox.put_nowait(bus.dumps(action.message)):
                return actions[i:]
        return []

    async def run(self, actions: list[sa.Action]) -> None:
        # Audio jobs go first, sent from here: the job's XADD leaves before, say, the vad
        # message cut with it is framed and sent. The writes queued with a job (its counter)
        # go in the same round trip, after it.
        jobs = [job for job in actions if isinstance(job, sa.QueueAudio)]
        if jobs:
            for action in (*jobs, *(a for a in actions if _for_writer(a) and not isinstance(a, sa.QueueAudio))):
                self._writer.put(action)
            await self._writer.send_now()
        for action in actions:
            if _for_writer(action):
                if not jobs:
                    self._writer.put(action)
            elif isinstance(action, sa.Send):
                if not await self._outbox.put(bus.dumps(action.message), replay=action.replay):
                    metrics.REFUSED.labels("slow_consumer").inc()
                    log.warning("a client is not reading its results; disconnecting it")
                    await self.run(self._detach())
                    self._outbox.close_now(1008, "client not reading its results")
            elif isinstance(action, sa.Close):
                await self._outbox.close(action.code, action.reason)
