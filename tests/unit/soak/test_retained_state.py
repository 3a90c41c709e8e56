"""Nothing the gateway keeps per client address or per message outlives its purpose.

Each test drives many finished sessions (or messages) through one structure and checks that
it is back to its baseline size afterwards: a structure that kept something per finished
session grows with the count instead.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from gateway.limits import AuthFailureTracker, IpRateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_ip_limiter_forgets_addresses_once_their_window_has_passed() -> None:
    clock = Clock()
    limiter = IpRateLimiter(10, clock=clock)
    for i in range(5000):  # one finished session from each of 5000 addresses
        assert limiter.check(f"10.0.{i // 256}.{i % 256}") is None
    clock.t += 61
    assert limiter.check("192.0.2.1") is None
    assert len(limiter) == 1  # only the address seen within the last minute


def test_ip_limiter_still_limits_an_active_address_while_forgetting_others() -> None:
    clock = Clock()
    limiter = IpRateLimiter(3, clock=clock)
    for _ in range(3):
        assert limiter.check("192.0.2.7") is None
    clock.t += 30
    for i in range(100):
        limiter.check(f"10.1.0.{i}")
    assert limiter.check("192.0.2.7") is not None  # its three attempts are 30 s old: still counted
    clock.t += 31
    assert limiter.check("192.0.2.7") is None
    assert len(limiter) == 101  # the 100 others are 31 s old: still within their window
    clock.t += 30
    limiter.check("192.0.2.8")
    assert len(limiter) == 2


def test_auth_failures_are_forgotten_after_the_lockout_period() -> None:
    clock = Clock()
    tracker = AuthFailureTracker(3, 60.0, clock=clock)
    for i in range(2000):  # one bad token from each of many addresses
        tracker.record_failure(f"10.2.{i // 256}.{i % 256}")
    for _ in range(3):
        tracker.record_failure("192.0.2.9")  # locks this one out
    assert tracker.check("192.0.2.9") is not None
    clock.t += 61
    assert tracker.check("192.0.2.10") is None
    assert len(tracker) == 0


def test_auth_lockout_outlives_the_forgetting_of_older_failures() -> None:
    clock = Clock()
    tracker = AuthFailureTracker(2, 60.0, clock=clock)
    tracker.record_failure("10.3.0.1")
    clock.t += 30
    tracker.record_failure("192.0.2.11")
    tracker.record_failure("192.0.2.11")  # locked until t+90
    clock.t += 40  # the first address's failure is 70 s old, the lockout has 20 s to go
    assert tracker.check("192.0.2.11") is not None
    assert len(tracker) == 1


def test_decoding_results_does_not_cache_each_sessions_ids() -> None:
    """pydantic-core caches short JSON string values unless told otherwise; every session and
    segment id would then stay in its cache (up to ~1.3 MB). In a fresh interpreter, so no
    earlier test has filled the cache already."""
    code = textwrap.dedent(
        """
        import gc, tracemalloc, uuid
        from common import bus
        def message(session_id):
            return bus.encode_result(bus.FinalResult(
                session_id=session_id, segment_id=bus.segment_id(session_id, 0), utterance_index=0,
                text="hello", language="en", language_probability=0.9, start=0.0, end=1.0, worker="w"))
        bus.decode_result(message(uuid.uuid4().hex))
        tracemalloc.start()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5000):
            bus.decode_result(message(uuid.uuid4().hex))
        gc.collect()
        print(tracemalloc.get_traced_memory()[0] - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    retained = int(out.stdout.strip().splitlines()[-1])
    # With the cache on, 5000 sessions keep ~600 KB (about 120 B each); without it, nothing.
    assert retained < 50_000, f"{retained} bytes retained after decoding 5000 sessions' results"
