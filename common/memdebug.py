"""Memory introspection for the ops port: resident set size, and opt-in tracemalloc diffs.

``rss_bytes()`` is cheap and always on (``/health`` details carry it, so a soak can follow
each service's memory without a Prometheus). ``AllocationTracker`` is the opt-in part
(``MEMORY_DEBUG=true``): it starts :mod:`tracemalloc` at service start and, on each
``GET /debug/memory``, answers the allocation sites that grew most since the previous
request (and since the first). tracemalloc slows allocation down noticeably and keeps its
own bookkeeping, which is why it is off by default and never on in production.
"""

from __future__ import annotations

import gc
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from common.memtrim import release_free_heap

_PROCESS = psutil.Process()


def rss_bytes() -> int:
    """This process's resident set size now."""
    return int(_PROCESS.memory_info().rss)


def malloc_trim() -> tuple[int, int] | None:
    """Ask glibc to give free heap memory back to the system; RSS before and after.

    A diagnostic: when RSS falls back close to where it started, the growth was memory the
    allocator held free (fragmentation), not objects kept alive. None off glibc.
    """
    gc.collect()
    before = rss_bytes()
    if not release_free_heap():
        return None
    return before, rss_bytes()


@dataclass(frozen=True)
class SiteGrowth:
    """One allocation site (file:line of the innermost frame) and how it changed."""

    site: str
    size_diff: int
    count_diff: int
    size: int
    count: int


class AllocationTracker:
    """tracemalloc snapshots, compared with the previous one and with the first one."""

    def __init__(self, frames: int = 1) -> None:
        self.frames = frames
        self._first: tracemalloc.Snapshot | None = None
        self._last: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        self._first = self._last = self._snapshot()

    def _snapshot(self) -> tracemalloc.Snapshot:
        gc.collect()  # what a collection frees is not retained: leave it out of the diff
        return tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen importlib._bootstrap>"))
        )

    def report(self, top: int = 25, *, trim: bool = False) -> dict[str, Any]:
        """Top growing sites since the previous report and since start, plus totals; with
        ``trim``, also RSS before and after :func:`malloc_trim`."""
        trimmed = malloc_trim() if trim else None
        if self._first is None or self._last is None:
            self.start()
        assert self._first is not None and self._last is not None
        now = self._snapshot()
        since_last = _top(now, self._last, top)
        since_start = _top(now, self._first, top)
        self._last = now
        traced, peak = tracemalloc.get_traced_memory()
        return {
            "rss_bytes": rss_bytes(),
            "traced_bytes": traced,
            "traced_peak_bytes": peak,
            "gc_objects": len(gc.get_objects()),
            "malloc_trim_rss_bytes": list(trimmed) if trimmed else None,
            "since_last": [asdict(s) for s in since_last],
            "since_start": [asdict(s) for s in since_start],
        }

    def stop(self) -> None:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        self._first = self._last = None


def _top(now: tracemalloc.Snapshot, before: tracemalloc.Snapshot, top: int) -> list[SiteGrowth]:
    stats = now.compare_to(before, "lineno")
    stats.sort(key=lambda s: s.size_diff, reverse=True)
    out = []
    for stat in stats[:top]:
        frame = stat.traceback[0]
        out.append(SiteGrowth(f"{frame.filename}:{frame.lineno}", stat.size_diff, stat.count_diff,
                              stat.size, stat.count))
    return out
