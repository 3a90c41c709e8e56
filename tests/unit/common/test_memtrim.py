"""When a service gives free heap back: idle after its work (a worker's batch, a gateway's
sessions), or over the soft limit under load."""

from __future__ import annotations

import asyncio
import ctypes.util

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from common.memdebug import rss_bytes
from common.memtrim import HeapTrimmer, TrimPolicy, TrimSchedule, release_free_heap

MB = 2**20


def test_idle_trim_comes_once_after_a_batch_and_never_during_one() -> None:
    s = TrimSchedule(TrimPolicy(idle_seconds=1.0))
    assert not s.due_idle(100.0)  # nothing ran yet: nothing to give back
    s.work_started()
    assert not s.due_idle(100.0)
    assert not s.work_ended(100.0, lambda: 900 * MB)  # no soft limit: never under load
    assert not s.due_idle(100.9)
    assert s.due_idle(101.0)
    assert not s.due_idle(105.0)  # once per idle spell
    s.work_started()
    assert not s.due_idle(200.0)  # a long batch is not idleness
    s.work_ended(200.0, lambda: 0)
    assert s.due_idle(201.5)


def test_over_the_soft_limit_a_busy_worker_trims_at_most_every_interval() -> None:
    s = TrimSchedule(TrimPolicy(idle_seconds=1.0, soft_limit_bytes=400 * MB, min_interval=10.0))
    ends = [(t, s.work_ended(t, lambda: 500 * MB)) for t in np.arange(0.0, 30.0, 0.5)]
    assert [t for t, trimmed in ends if trimmed] == [0.0, 10.0, 20.0]
    assert not s.work_ended(31.0, lambda: 300 * MB)  # under the limit: the idle trim will do


def test_zero_disables_each_occasion() -> None:
    s = TrimSchedule(TrimPolicy(idle_seconds=0, soft_limit_bytes=0))
    s.work_started()
    assert not s.work_ended(0.0, lambda: 10**12)
    assert not s.due_idle(1e9)


def test_release_gives_freed_heap_back() -> None:
    # Many small blocks (below glibc's mmap threshold, so they live in the heap), then free
    # most of them: the heap keeps the pages until trimmed.
    if ctypes.util.find_library("c") is None:
        pytest.skip("no C library to trim (not glibc)")
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # about 190 MB touched
    del blocks[:-1]
    before = rss_bytes()
    assert release_free_heap()
    assert rss_bytes() < before - 50 * MB, (before / MB, rss_bytes() / MB)


def test_rss_is_read_only_when_a_soft_limit_trim_may_be_due() -> None:
    reads: list[int] = []

    def rss() -> int:
        reads.append(1)
        return 500 * MB

    off = TrimSchedule(TrimPolicy(soft_limit_bytes=0))
    on = TrimSchedule(TrimPolicy(soft_limit_bytes=400 * MB, min_interval=10.0))
    for t in range(10):
        off.work_ended(float(t), rss)
    assert reads == []
    for t in range(10):  # a trim at 0, then nothing due before 10
        on.work_ended(float(t), rss)
    assert len(reads) == 1
    below = TrimSchedule(TrimPolicy(soft_limit_bytes=900 * MB, min_interval=10.0))
    reads.clear()
    for t in range(25):  # under the limit: looked at once an interval, never trimmed
        assert not below.work_ended(float(t), rss)
    assert len(reads) == 3


def test_overlapping_work_is_idle_only_when_none_is_left() -> None:
    # A gateway's sessions overlap: one ending while another runs is not idleness.
    s = TrimSchedule(TrimPolicy(idle_seconds=1.0))
    s.work_started()
    s.work_started()
    s.work_ended(10.0, lambda: 0)
    assert not s.due_idle(20.0)
    s.work_ended(21.0, lambda: 0)
    assert not s.due_idle(21.5)
    assert s.due_idle(22.0)


async def test_the_trimmer_trims_over_the_soft_limit_and_when_idle() -> None:
    trims = Counter("trims", "t", ["when"], registry=CollectorRegistry())
    rss = {"now": 500 * MB}
    trimmer = HeapTrimmer(TrimPolicy(idle_seconds=0.1, soft_limit_bytes=400 * MB, min_interval=60.0),
                          lambda: rss["now"], trims)
    if ctypes.util.find_library("c") is None:
        pytest.skip("no C library to trim (not glibc)")
    trimmer.started()
    await trimmer.ended()  # over the limit: at once
    assert trims.labels("over_soft_limit")._value.get() == 1
    rss["now"] = 100 * MB
    trimmer.started()
    idle = asyncio.create_task(trimmer.idle_loop())
    try:
        await asyncio.sleep(0.3)
        assert trims.labels("idle")._value.get() == 0  # work under way
        await trimmer.ended()
        for _ in range(50):
            if trims.labels("idle")._value.get():
                break
            await asyncio.sleep(0.05)
        assert trims.labels("idle")._value.get() == 1
        assert trims.labels("over_soft_limit")._value.get() == 1  # under the limit now
    finally:
        idle.cancel()


async def test_an_idle_trim_collects_garbage_in_cycles_first() -> None:
    # Cyclic garbage waits for a full collection; its pages could not be trimmed before it.
    import gc
    import weakref

    class Node:
        pass

    trims = Counter("trims_gc", "t", ["when"], registry=CollectorRegistry())
    trimmer = HeapTrimmer(TrimPolicy(idle_seconds=0.1), lambda: 0, trims)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None  # only the collector frees a cycle
        await trimmer.release("over_soft_limit")
        assert alive() is not None  # under load the collector's own thresholds decide
        await trimmer.release("idle")
        assert alive() is None
    finally:
        if was_enabled:
            gc.enable()


def test_an_idle_trim_still_follows_a_trim_under_load() -> None:
    # Only the idle one collects cyclic garbage first.
    s = TrimSchedule(TrimPolicy(idle_seconds=1.0, soft_limit_bytes=400 * MB, min_interval=10.0))
    s.work_started()
    assert s.work_ended(0.0, lambda: 500 * MB)
    assert s.due_idle(1.0)
    assert not s.due_idle(2.0)
