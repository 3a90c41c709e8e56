"""The overhead benchmark runs end to end in both shapes (figures are printed by the script,
not asserted)."""

from __future__ import annotations

import pytest

from benchmarks.overhead import run, run_processes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shape", [run, run_processes], ids=["one_process", "processes"])
async def test_overhead_benchmark_times_every_utterance(shape: object) -> None:
    timings = await shape(2)  # type: ignore[operator]
    assert len(timings) == 2 and all(t > 0 for t in timings)
