"""The soak's pure parts: durations, the least-squares slope, and the pass/fail verdict."""

from __future__ import annotations

import pytest

from common.embedded_redis import free_port
from demos.soak import (
    MB,
    Round,
    SoakOptions,
    audit_redis,
    format_result,
    growth,
    parse_duration,
    parse_health,
    slope_per_100,
    verdict,
)


def rnd(index: int, sessions: int, rss_mb: float | None, succeeded: int = 10) -> Round:
    return Round(index, sessions, succeeded, 10, 2.0,
                 {"gateway": None if rss_mb is None else int(rss_mb * MB)}, 20.0)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "-5m", "5d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_slope_is_least_squares_per_100() -> None:
    # Two plateaus: sxy = 30, sxx = 500, so 0.06 MB a session, 6 per 100.
    points = [(10.0, 100.5), (20.0, 100.5), (30.0, 102.0), (40.0, 102.0)]
    assert slope_per_100(points) == pytest.approx(6.0)
    assert slope_per_100([(10.0, 1.0)]) is None
    assert slope_per_100([(10.0, 1.0), (10.0, 2.0)]) is None


def test_warm_up_rounds_are_left_out() -> None:
    rounds = [rnd(1, 10, 100), rnd(2, 20, 120)] + [rnd(i, i * 10, 125.0) for i in range(3, 8)]
    [g] = growth(rounds, ["gateway"], warmup_rounds=2)
    assert g.slope_mb_per_100 == pytest.approx(0.0)
    assert g.points == 5
    [with_warmup] = growth(rounds, ["gateway"], warmup_rounds=0)
    assert with_warmup.slope_mb_per_100 is not None and with_warmup.slope_mb_per_100 > 10


def test_verdict_fails_on_growth_over_the_bound_only() -> None:
    options = SoakOptions(duration=60, warmup_rounds=0, max_growth_mb_per_100=2.0)
    growing = [rnd(i, i * 10, 100 + i * 0.3) for i in range(1, 6)]  # 3 MB per 100
    flat = [rnd(i, i * 10, 100 + (i % 2) * 0.1) for i in range(1, 6)]
    assert any("gateway grew 3.00 MB" in f for f in verdict(growing, growth(growing, ["gateway"], 0), options, None))
    assert verdict(flat, growth(flat, ["gateway"], 0), options, None) == []


def test_verdict_fails_on_failed_sessions_missing_data_and_keys_without_ttl() -> None:
    options = SoakOptions(duration=60, warmup_rounds=0)
    failed = [rnd(1, 10, 100, succeeded=9), rnd(2, 20, 100)]
    assert verdict(failed, growth(failed, ["gateway"], 0), options, None) == ["1 of 20 sessions failed"]
    unknown = [rnd(1, 10, None), rnd(2, 20, None)]
    assert "no growth measured" in verdict(unknown, growth(unknown, ["gateway"], 0), options, None)[0]
    ok = [rnd(1, 10, 100), rnd(2, 20, 100)]
    redis = {"session_keys_without_ttl": ["session:abc"]}
    assert "without a TTL" in verdict(ok, growth(ok, ["gateway"], 0), options, redis)[0]


async def test_a_redis_gone_before_the_audit_fails_the_soak_with_its_reason() -> None:
    """The stack under test may take Redis down with it: the rounds measured are still
    reported, and the verdict says why the audit is missing (it used to raise)."""
    from demos.soak import SoakResult

    redis = await audit_redis(f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    assert "ConnectionError" in redis["error"]
    options = SoakOptions(duration=60, warmup_rounds=0)
    ok = [rnd(1, 10, 100), rnd(2, 20, 100)]
    failures = verdict(ok, growth(ok, ["gateway"], 0), options, redis)
    assert failures == [f"the Redis key audit could not run ({redis['error']})"]
    report = format_result(SoakResult(ok, {"gateway": 100 * MB}, growth(ok, ["gateway"], 0), failures, redis),
                           ["gateway"], options)
    assert report.splitlines()[-1].startswith("FAIL: the Redis key audit could not run")


def test_health_urls() -> None:
    assert parse_health(["gateway=http://h:1", "stt=https://h:2"]) == {"gateway": "http://h:1", "stt": "https://h:2"}
    assert "gateway" in parse_health(None)
    with pytest.raises(ValueError):
        parse_health(["gateway:8080"])
