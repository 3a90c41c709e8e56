"""Giving the allocator's free memory back to the system: when a service is idle, and under
load when it is over a soft limit. The model workers' unit of work is a batch, the gateway's
a session.

Why: inference allocates tensors whose size follows each batch (how many jobs, how long their
audio), and glibc keeps what is freed in its heaps for reuse. Over many batches of different
shapes that free memory fragments and stays resident. Measured with tiny.en on 100 batches
of conversational jobs (``python -m benchmarks.worker_memory``): RSS climbs from 148 to
about 425 MB, and ``malloc_trim`` gives 173 MB of it back at once, so this is memory the
allocator holds free, not objects kept alive. Trimming after every batch holds RSS near
230 MB but costs about 11 ms per call, plus the pages faulted in again by the next batch,
which slowed that run by roughly a quarter. So the worker trims:

* when it has been idle ``idle_seconds`` after a batch: the cost falls where nothing waits;
* under sustained load only while RSS is above ``soft_limit_bytes``, and at most every
  ``min_interval`` seconds, which bounds the cost to a few per cent.

:class:`TrimSchedule` decides (pure, clock-injected); :func:`release_free_heap` does it;
:class:`HeapTrimmer` is the asyncio shell both services run.

The gateway has the same shape on a smaller scale: each session allocates frames, VAD
windows and messages of its own sizes. A 30-minute soak of conversational sessions left its
RSS creeping by about 4 MB per hundred sessions; ``malloc_trim`` gave 13 MB back at the end,
and the rest was cyclic garbage waiting for a full collection (``HeapTrimmer.release``).
Sessions overlap, so the schedule counts the work under way and is idle only when none is.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter


@dataclass(frozen=True)
class TrimPolicy:
    #: Trim once nothing has run for this long after a piece of work; 0: never when idle.
    idle_seconds: float = 1.0
    #: Under load, trim after a piece of work that leaves RSS above this; 0: never under load.
    soft_limit_bytes: int = 0
    #: Under load, at most one trim per this many seconds.
    min_interval: float = 10.0


class TrimSchedule:
    """When to give free heap back. ``work_started`` / ``work_ended`` frame each piece of work
    (they may overlap); ``due_idle`` is polled. Each method returning True means "trim now",
    and counts as done."""

    def __init__(self, policy: TrimPolicy) -> None:
        self.policy = policy
        self._running = 0  # pieces of work under way
        self._dirty = False  # work ran since the last trim
        self._last_end = -math.inf
        self._last_check = -math.inf  # when RSS was last read against the soft limit

    def work_started(self) -> None:
        self._running += 1

    def work_ended(self, now: float, rss: Callable[[], int]) -> bool:
        """``rss`` is read only when a soft-limit trim may be due (not after every piece)."""
        self._running = max(0, self._running - 1)
        self._dirty = True
        self._last_end = now
        p = self.policy
        # RSS is looked at once per interval at most, whatever it showed (a psutil read costs
        # tens of microseconds, which after every batch or session would add up).
        if p.soft_limit_bytes and now - self._last_check >= p.min_interval:
            self._last_check = now
            # The idle trim still follows: it also collects cyclic garbage, which this one
            # (under load) does not.
            return rss() > p.soft_limit_bytes
        return False

    def due_idle(self, now: float) -> bool:
        p = self.policy
        if p.idle_seconds and self._dirty and not self._running and now - self._last_end >= p.idle_seconds:
            self._dirty = False
            return True
        return False


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release_free_heap() -> bool:
    """``malloc_trim(0)``: glibc returns the free parts of its heaps. False off glibc (musl,
    macOS), where there is nothing to call and nothing is done."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrimmer:
    """A :class:`TrimSchedule` run by a service: :meth:`idle_loop` as a task, ``started`` /
    ``ended`` around each piece of work, each trim counted in ``trims`` by occasion."""

    def __init__(self, policy: TrimPolicy, rss: Callable[[], int], trims: Counter) -> None:
        self.schedule = TrimSchedule(policy)
        self._rss = rss
        self._trims = trims

    def started(self) -> None:
        self.schedule.work_started()

    async def ended(self) -> None:
        if self.schedule.work_ended(time.monotonic(), self._rss):
            await self.release("over_soft_limit")

    async def idle_loop(self) -> None:
        period = self.schedule.policy.idle_seconds / 2
        if period <= 0:
            return
        while True:
            await asyncio.sleep(period)
            if self.schedule.due_idle(time.monotonic()):
                await self.release("idle")

    async def release(self, when: str) -> None:
        if when == "idle":
            # Garbage in reference cycles waits for a full collection, which comes rarely
            # once the heap is big, and the pages it holds cannot be trimmed: over 90
            # conversational sessions a gateway grew 152 -> 159 MB without this, and stayed
            # flat with it. A full collection holds the GIL for tens of milliseconds, so only
            # when idle; under load the collector's own thresholds still run it.
            gc.collect()
        # 10-30 ms in a thread, off the event loop (heartbeat, health, other sessions).
        if await asyncio.to_thread(release_free_heap):
            self._trims.labels(when).inc()
