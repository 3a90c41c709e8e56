"""The overhead benchmark runs end to end (figures are printed by the script, not asserted)."""

from __future__ import annotations

import pytest

from benchmarks.overhead import run

pytestmark = pytest.mark.integration


async def test_overhead_benchmark_times_every_utterance() -> None:
    timings = await run(2)
    assert len(timings) == 2 and all(t > 0 for t in timings)
