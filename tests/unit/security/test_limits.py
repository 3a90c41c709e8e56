"""The in-memory limits of one gateway: connection attempts per IP, auth failures and lockout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.limits import AuthFailureTracker, IpRateLimiter, Refusal


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ip_limit_allows_then_refuses_with_a_code_and_retry_after() -> None:
    clock = FakeClock()
    limiter = IpRateLimiter(3, clock=clock)
    assert [limiter.check("1.2.3.4") for _ in range(3)] == [None, None, None]
    clock.now += 10
    refusal = limiter.check("1.2.3.4")
    assert isinstance(refusal, Refusal) and refusal.code == "rate_limited_ip"
    assert refusal.retry_after == pytest.approx(50.0) and refusal.http_status == 429
    assert refusal.retry_after_header() == {"Retry-After": "50"}
    assert limiter.check("5.6.7.8") is None  # other addresses are unaffected
    clock.now += 50.01
    assert limiter.check("1.2.3.4") is None  # the window slid past the first attempts


def test_refused_attempts_do_not_extend_the_window() -> None:
    clock = FakeClock()
    limiter = IpRateLimiter(1, clock=clock)
    assert limiter.check("ip") is None
    for _ in range(30):
        clock.now += 1
        assert limiter.check("ip") is not None
    clock.now += 31
    assert limiter.check("ip") is None


def test_ip_memory_is_bounded() -> None:
    limiter = IpRateLimiter(5, clock=FakeClock(), max_ips=100)
    for i in range(1000):
        limiter.check(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200), st.integers(1, 10))
def test_never_more_than_the_limit_in_any_window(gaps: list[float], limit: int) -> None:
    clock = FakeClock(0.0)
    limiter = IpRateLimiter(limit, clock=clock)
    accepted: list[float] = []
    for gap in gaps:
        clock.now += gap
        if limiter.check("ip") is None:
            accepted.append(clock.now)
    for t in accepted:
        assert sum(1 for u in accepted if t - 60 < u <= t) <= limit


def test_failures_lock_out_then_the_lockout_ends() -> None:
    clock = FakeClock()
    tracker = AuthFailureTracker(3, 300, clock=clock)
    assert tracker.check("ip") is None
    assert tracker.record_failure("ip") is None
    assert tracker.record_failure("ip") is None
    refusal = tracker.record_failure("ip")
    assert refusal is not None and refusal.code == "locked_out"
    assert refusal.retry_after == pytest.approx(300)
    clock.now += 299
    locked = tracker.check("ip")
    assert locked is not None and locked.code == "locked_out" and locked.retry_after == pytest.approx(1)
    assert tracker.check("other") is None
    tracker.record_success("ip")  # a success during a lockout does not lift it
    assert tracker.check("ip") is not None
    clock.now += 1
    assert tracker.check("ip") is None
    assert tracker.record_failure("ip") is None  # the count started over


def test_success_clears_failures_and_old_failures_age_out() -> None:
    clock = FakeClock()
    tracker = AuthFailureTracker(3, 60, clock=clock)
    tracker.record_failure("ip")
    tracker.record_failure("ip")
    tracker.record_success("ip")
    assert tracker.record_failure("ip") is None
    assert tracker.record_failure("ip") is None
    clock.now += 61  # both are older than the window now
    assert tracker.record_failure("ip") is None
    assert tracker.record_failure("ip") is None
    assert tracker.record_failure("ip") is not None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        IpRateLimiter(0)
    with pytest.raises(ValueError):
        AuthFailureTracker(0, 10)


def test_pending_auth_slots_are_bounded_per_ip_and_given_back() -> None:
    from gateway.limits import TOO_MANY_UNAUTHENTICATED, PendingAuthLimiter

    clock = FakeClock()
    pending = PendingAuthLimiter(2, hold_seconds=11.0, clock=clock)
    first, second = pending.acquire("ip"), pending.acquire("ip")
    assert isinstance(first, int) and isinstance(second, int) and first != second
    refusal = pending.acquire("ip")
    assert isinstance(refusal, Refusal) and refusal.code == TOO_MANY_UNAUTHENTICATED
    assert refusal.http_status == 429 and refusal.retry_after == pytest.approx(11.0)
    assert isinstance(pending.acquire("other-ip"), int)  # other addresses are unaffected
    pending.release("ip", first)
    pending.release("ip", first)  # idempotent
    assert pending.pending("ip") == 1
    assert isinstance(pending.acquire("ip"), int)


def test_a_pending_auth_slot_never_released_frees_itself() -> None:
    """A handshake that never reaches the connection handler must not hold a slot forever."""
    from gateway.limits import PendingAuthLimiter

    clock = FakeClock()
    pending = PendingAuthLimiter(1, hold_seconds=11.0, clock=clock)
    assert isinstance(pending.acquire("ip"), int)
    clock.now += 10.9
    assert isinstance(pending.acquire("ip"), Refusal)
    clock.now += 0.2
    assert isinstance(pending.acquire("ip"), int)


def test_the_handshake_guard_bounds_connections_waiting_for_auth(secret: str) -> None:
    """Auth on, no token in the handshake: each connection waits for an auth message and
    holds a slot of its IP; past UNAUTHENTICATED_CONNECTIONS_PER_IP they are refused (429)."""
    from common.security_settings import SecuritySettings
    from gateway.limits import TOO_MANY_UNAUTHENTICATED, HandshakeGuard

    clock = FakeClock()
    settings = SecuritySettings(jwt_secret=secret, unauthenticated_connections_per_ip=3,
                                connections_per_ip_per_minute=1000)
    guard = HandshakeGuard.from_settings(settings, clock=clock)
    admitted = [guard.admit("9.9.9.9", {}, "/") for _ in range(3)]
    assert all(a.deferred and a.refusal is None for a in admitted)
    refused = guard.admit("9.9.9.9", {}, "/")
    assert refused.refusal is not None and refused.refusal.code == TOO_MANY_UNAUTHENTICATED
    assert guard.admit("8.8.8.8", {}, "/").deferred
    guard.auth_settled("9.9.9.9", admitted[0])
    assert guard.admit("9.9.9.9", {}, "/").deferred
