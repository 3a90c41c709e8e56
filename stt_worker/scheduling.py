"""Which fetched jobs to run, and in which order: a pure core, no I/O, no clock of its own.

Rules (issue 4, DESIGN.md section 4):

* live finals run before partials, and pieces of uploaded files (``priority="batch"``) after
  both, so a long upload never delays a live session; finals are never skipped (a redelivered final is harmless,
  the gateway drops the duplicate ``segment_id``);
* a speculative (early) final is a guess made during a pause: it runs like a final but does
  not overtake its utterance's partials, since the speaker may resume (issue 13, defect 2);
* a partial is skipped without inference when it has been overtaken: a newer partial of
  the same utterance, a partial of a later utterance of the session, or the final of its
  utterance (or of a later one) is in the same fetch or was seen in an earlier fetch;
* a partial older than ``partial_max_age`` seconds (``PARTIAL_MAX_AGE``) is skipped: its text would arrive
  after the speaker had moved on.

The selector remembers, per session, the highest finalised utterance and the newest
partial seen, in an LRU bounded by ``max_sessions`` so a long-running worker does not grow
without limit.  Forgetting a session only means an overtaken partial from it might run once.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


class SkipReason(str, enum.Enum):
    """Why a partial was not run; ``str()`` gives the value, usable as a metrics label."""

    SUPERSEDED_BY_PARTIAL = "superseded_by_partial"
    SUPERSEDED_BY_FINAL = "superseded_by_final"
    TOO_OLD = "too_old"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class JobDescriptor:
    """What the selector needs to know of a job; ``key`` is the caller's handle (entry id)."""

    key: str
    kind: Literal["final", "partial"]
    session_id: str
    utterance_index: int
    #: Seconds on the clock passed as ``now`` to :meth:`JobSelector.select`.
    created_at: float
    partial_seq: int = 0
    priority: Literal["interactive", "batch"] = "interactive"
    #: An early final sent during a pause that may not end the utterance.
    speculative: bool = False


@dataclass(frozen=True)
class Skipped:
    """A job not to run, and why."""

    job: JobDescriptor
    reason: SkipReason

    @property
    def key(self) -> str:
        """The skipped job's key."""
        return self.job.key


@dataclass(frozen=True)
class Selection:
    """The outcome of one :meth:`JobSelector.select` call."""

    to_run: list[JobDescriptor]
    skipped: list[Skipped]

    @property
    def live_finals(self) -> list[JobDescriptor]:
        return [j for j in self.to_run if j.kind == "final" and j.priority == "interactive"]

    @property
    def partials(self) -> list[JobDescriptor]:
        return [j for j in self.to_run if j.kind == "partial"]

    @property
    def batch_finals(self) -> list[JobDescriptor]:
        return [j for j in self.to_run if j.kind == "final" and j.priority == "batch"]


@dataclass
class _SessionState:
    final_utterance: int = -1
    #: (utterance_index, partial_seq) of the newest partial seen.
    partial: tuple[int, int] = (-1, -1)


class JobSelector:
    """Stateful but pure: same inputs and memory give the same output."""

    def __init__(self, partial_max_age: float = 2.0, *, max_sessions: int = 10_000) -> None:
        self.partial_max_age = partial_max_age
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _SessionState] = OrderedDict()

    def select(self, jobs: Sequence[JobDescriptor], now: float) -> Selection:
        """Split ``jobs`` into the ones to run (in order) and the skipped ones with reasons."""
        # Learn from the whole fetch first, so a newer job anywhere in it wins.
        for job in jobs:
            state = self._state(job.session_id)
            if job.kind == "final" and not job.speculative:
                state.final_utterance = max(state.final_utterance, job.utterance_index)
            else:
                state.partial = max(state.partial, (job.utterance_index, job.partial_seq))
        finals = [j for j in jobs if j.kind == "final" and j.priority == "interactive"]
        finals.sort(key=lambda j: (j.created_at, j.session_id, j.utterance_index))
        batch = [j for j in jobs if j.kind == "final" and j.priority == "batch"]
        batch.sort(key=lambda j: (j.created_at, j.session_id, j.utterance_index))
        partials: list[JobDescriptor] = []
        skipped: list[Skipped] = []
        taken: set[tuple[str, int, int]] = set()
        for job in (j for j in jobs if j.kind == "partial"):
            # .get: a fetch spanning more sessions than the memory holds evicts some.
            state = self._sessions.get(job.session_id) or _SessionState()
            ident = (job.session_id, job.utterance_index, job.partial_seq)
            if job.utterance_index <= state.final_utterance:
                skipped.append(Skipped(job, SkipReason.SUPERSEDED_BY_FINAL))
            elif (
                job.utterance_index,
                job.partial_seq,
            ) < state.partial or ident in taken:
                skipped.append(Skipped(job, SkipReason.SUPERSEDED_BY_PARTIAL))
            elif now - job.created_at > self.partial_max_age:
                skipped.append(Skipped(job, SkipReason.TOO_OLD))
            else:
                taken.add(ident)
                partials.append(job)
        partials.sort(key=lambda j: (j.created_at, j.session_id))
        return Selection(to_run=finals + partials + batch, skipped=skipped)

    def _state(self, session_id: str) -> _SessionState:
        state = self._sessions.get(session_id)
        if state is None:
            state = _SessionState()
            self._sessions[session_id] = state
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return state

    def __len__(self) -> int:
        return len(self._sessions)
