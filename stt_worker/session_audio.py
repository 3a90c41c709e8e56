"""The sessions' recent audio, which partial jobs name by sample range (``AudioJob.audio_samples``).

The gateway appends each sample of a session's speech to the session's audio stream once
(``bus.session_audio_key``); a partial job carries only the range it wants. This cache keeps,
per session, the contiguous run of samples read so far and the last entry id, so each
partial reads only the appends since the previous one: the audio crosses the bus about once,
where an inline tail crossed it once per partial.

An append that starts inside the run held replaces the run from there (a gateway appending
again after a failed write); one that starts elsewhere (a gap, or a resumed session whose
clock restarted) starts a new run. A range the run does not cover is ``None``: the partial is
skipped, which costs nothing but that partial. Runs are trimmed behind the earliest sample
still wanted, and sessions not asked about for ``IDLE_SECONDS`` are dropped.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from common import bus
from stt_worker import metrics
from stt_worker.engine import SAMPLE_RATE as SR

log = logging.getLogger(__name__)

KEEP_BEHIND = SR  # samples kept before the start of the latest range asked for
IDLE_SECONDS = 120.0
MAX_SESSIONS = 1024


@dataclass
class _Run:
    start: int = 0  # session sample of pcm[0]
    pcm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    last_id: str | None = None  # the last stream entry read
    used_at: float = 0.0

    @property
    def end(self) -> int:
        return self.start + len(self.pcm)

    def put(self, first: int, pcm: np.ndarray) -> None:
        if len(self.pcm) and self.start <= first <= self.end:
            self.pcm = np.concatenate((self.pcm[: first - self.start], pcm))
        else:
            self.start, self.pcm = first, pcm

    def trim(self, keep_from: int) -> None:
        drop = min(len(self.pcm), max(0, keep_from - self.start))
        if drop:
            self.pcm = self.pcm[drop:]
            self.start += drop

    def slice(self, a: int, b: int) -> np.ndarray | None:
        if a < self.start or b > self.end or b < a:
            return None
        return self.pcm[a - self.start : b - self.start].copy()


class SessionAudioCache:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, max_sessions: int = MAX_SESSIONS) -> None:
        self._runs: OrderedDict[str, _Run] = OrderedDict()  # least recently used first
        self._idle = idle_seconds
        self._max = max_sessions

    def __len__(self) -> int:
        return len(self._runs)

    async def audio(self, redis: Any, job: bus.AudioJob, now: float) -> np.ndarray | None:
        """The job's samples, reading the appends made since this session's last read; None
        when the stream no longer (or never) had them."""
        assert job.audio_samples is not None
        a, b = job.audio_samples
        run = self._runs.pop(job.session_id, None) or _Run()
        self._runs[job.session_id] = run  # most recently used
        run.used_at = now
        # Always read what was appended since (the job's own append among it): a run that
        # already seems to cover the range may be from before a resume restarted the clock.
        low = "-" if run.last_id is None else f"({run.last_id}"
        entries = await redis.xrange(bus.session_audio_key(job.session_id), min=low, max="+")
        read = 0
        for entry_id, fields in entries:
            run.last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            try:
                first, pcm = bus.decode_session_audio(fields)
            except bus.MalformedMessage as exc:
                log.warning("skipping a malformed session audio entry: %s", exc)
                continue
            run.put(first, pcm)
            read += len(pcm)
        metrics.SESSION_AUDIO_READ_SECONDS.inc(read / SR)
        run.trim(a - KEEP_BEHIND)
        self._evict(now)
        return run.slice(a, b)

    def _evict(self, now: float) -> None:
        while self._runs:
            session_id, oldest = next(iter(self._runs.items()))
            if len(self._runs) <= self._max and now - oldest.used_at < self._idle:
                return
            del self._runs[session_id]
