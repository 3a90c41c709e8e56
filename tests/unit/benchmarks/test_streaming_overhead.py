"""benchmarks.streaming's overhead column: a quantile of a histogram between two snapshots."""

from __future__ import annotations

import math

import pytest

from benchmarks.streaming import histogram_quantile

INF = float("inf")


def test_quantile_counts_only_the_observations_between_the_snapshots() -> None:
    before = [(0.001, 5.0), (0.01, 5.0), (0.1, 5.0), (INF, 5.0)]  # 5 fast ones, earlier
    after = [(0.001, 5.0), (0.01, 9.0), (0.1, 15.0), (INF, 15.0)]  # then 4 in (1, 10] ms, 6 in (10, 100]
    assert histogram_quantile(before, after, 0.5) == pytest.approx(0.01 + 0.09 * (5 - 4) / 6)
    assert histogram_quantile(before, after, 0.2) == pytest.approx(0.001 + 0.009 * 2 / 4)


def test_quantile_in_the_open_bucket_is_the_last_bound_and_none_is_nan() -> None:
    before = [(0.01, 0.0), (INF, 0.0)]
    assert histogram_quantile(before, [(0.01, 1.0), (INF, 4.0)], 0.95) == 0.01
    assert math.isnan(histogram_quantile(before, before, 0.5))
