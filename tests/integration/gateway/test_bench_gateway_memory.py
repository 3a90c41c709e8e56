"""The gateway-memory benchmark runs end to end (figures are printed by the script, not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gateway_memory import run

pytestmark = pytest.mark.integration

CLIP = Path(__file__).resolve().parents[2] / "fixtures" / "stt" / "en_weather.wav"


async def test_gateway_memory_benchmark_reads_rss_after_each_round() -> None:
    points = await run(4, 2, 16.0, "idle", CLIP)
    assert [sessions for sessions, _ in points] == [2, 4]
    assert all(rss > 10 for _, rss in points)  # MB
