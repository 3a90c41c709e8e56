"""Unit tests of the partial scheduler and the result orderer, driven by an injected clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ordering import OrdererOptions, ResultOrderer
from gateway.partials import (
    DISABLED,
    IN_FLIGHT,
    NO_NEW_SPEECH,
    NO_UTTERANCE,
    NOT_DUE,
    OVERLOADED,
    SENT,
    PartialOptions,
    PartialScheduler,
)

# ------------------------------------------------------------------ PartialScheduler


def sends(s: PartialScheduler, times: list[float], depth: int = 0, answer: bool = True) -> list[float]:
    """Poll at each time; answer each sent partial at once (``answer``); return the send times."""
    out = []
    for t in times:
        d = s.poll(t, depth)
        if d.send:
            out.append(t)
            if answer:
                assert d.index is not None and d.partial_seq is not None
                s.on_result(d.index, d.partial_seq)
    return out


def ticks(start: float, end: float, step: float = 0.1) -> list[float]:
    n = round((end - start) / step)
    return [round(start + i * step, 6) for i in range(n + 1)]


def test_no_partial_without_an_open_utterance() -> None:
    s = PartialScheduler(PartialOptions())
    assert s.poll(10.0, 0).reason == NO_UTTERANCE


def test_a_partial_every_interval_while_the_utterance_is_open() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5))
    s.open(0, now=1.0)
    assert s.poll(1.2, 0).reason == NOT_DUE
    assert sends(s, ticks(1.3, 3.0)) == [1.5, 2.0, 2.5, 3.0]
    s.close(0)
    assert sends(s, ticks(3.1, 5.0)) == []
    assert s.poll(5.0, 0).reason == NO_UTTERANCE


def test_first_partial_can_come_sooner() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5, first_after=0.0))
    s.open(0, now=1.0)
    assert sends(s, ticks(1.0, 2.0)) == [1.0, 1.5, 2.0]


def test_at_most_one_in_flight_and_the_next_goes_when_the_result_comes() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5))
    s.open(0, now=0.0)
    first = s.poll(0.5, 0)
    assert first.send and first.reason == SENT and first.index == 0 and first.partial_seq == 1
    assert s.in_flight
    assert s.poll(1.0, 0).reason == IN_FLIGHT
    assert s.poll(1.7, 0).reason == IN_FLIGHT
    s.on_result(0, 99)  # someone else's sequence number: the slot stays taken
    assert s.poll(1.8, 0).reason == IN_FLIGHT
    s.on_result(0, 1)
    second = s.poll(1.9, 0)  # overdue since 1.0: goes as soon as the slot is free
    assert second.send and second.partial_seq == 2
    assert s.poll(2.0, 0).reason == NOT_DUE
    assert s.poll(2.4, 0).reason == IN_FLIGHT


def test_a_lost_partial_frees_the_slot_after_the_timeout() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5, inflight_timeout=3.0))
    s.open(0, now=0.0)
    assert s.poll(0.5, 0).send
    assert s.poll(3.4, 0).reason == IN_FLIGHT
    assert s.poll(3.5, 0).send


def test_partials_are_skipped_while_the_queue_is_too_deep() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5, max_queue_depth=10))
    s.open(0, now=0.0)
    assert s.poll(0.5, 11).reason == OVERLOADED
    assert s.poll(0.6, 11).reason == NOT_DUE  # counted once per interval, not per poll
    assert s.poll(1.0, 10).send  # at the limit is fine: only deeper is too deep
    assert (s.sent, s.skipped) == (1, 1)


def test_no_partial_while_the_speaker_pauses() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5))
    s.open(0, now=0.0)
    d = s.poll(0.5, 0, speech_end=0.45)
    assert d.send
    s.on_result(0, d.partial_seq or 0)
    assert s.poll(1.0, 0, speech_end=0.45).reason == NO_NEW_SPEECH  # nothing new was said
    assert s.poll(1.2, 0, speech_end=0.9).reason == NOT_DUE  # paced from the last poll
    assert s.poll(1.5, 0, speech_end=0.9).send
    assert s.skipped == 0


def test_partials_off_and_on() -> None:
    s = PartialScheduler(PartialOptions(enabled=False))
    s.open(0, now=0.0)
    assert s.poll(5.0, 0).reason == DISABLED
    s.set_enabled(True)
    assert s.poll(5.0, 0).send


def test_a_new_utterance_restarts_the_pacing_and_sequence_keeps_increasing() -> None:
    s = PartialScheduler(PartialOptions(interval=0.5))
    s.open(0, now=0.0)
    d1 = s.poll(0.5, 0)
    s.close(0)
    s.on_result(0, d1.partial_seq or 0)
    s.open(1, now=4.0)
    assert s.poll(4.2, 0).reason == NOT_DUE
    d2 = s.poll(4.5, 0)
    assert d2.send and d2.index == 1 and (d2.partial_seq or 0) > (d1.partial_seq or 0)


def test_closing_another_index_does_not_close_the_open_one() -> None:
    s = PartialScheduler(PartialOptions())
    s.open(3, now=0.0)
    s.close(2)
    assert s.open_index == 3


def test_bad_partial_options() -> None:
    with pytest.raises(ValueError):
        PartialOptions(interval=0)


# ------------------------------------------------------------------ ResultOrderer


def make(wait: float = 5.0) -> ResultOrderer[str]:
    return ResultOrderer(OrdererOptions(wait_seconds=wait))


def test_results_in_order_are_released_at_once() -> None:
    o = make()
    o.expect_final(0, 0.0)
    assert o.add_final(0, "F0", 1.0, translation_expected=True)
    assert o.release(1.0) == ["F0"]
    assert not o.idle and o.waiting_for == (0, "translation")
    o.add_translation(0, "T0", 1.2)
    assert o.release(1.2) == ["T0"]
    assert o.idle


def test_a_later_final_waits_for_the_earlier_one() -> None:
    o = make()
    for i in range(3):
        o.expect_final(i, 0.0)
    o.add_final(2, "F2", 1.0)
    o.add_final(1, "F1", 1.1)
    assert o.release(1.1) == []
    o.add_final(0, "F0", 1.2)
    assert o.release(1.2) == ["F0", "F1", "F2"]
    assert o.idle


def test_a_final_waits_for_the_previous_translation() -> None:
    o = make()
    o.expect_final(0, 0.0)
    o.expect_final(1, 0.0)
    o.add_final(0, "F0", 1.0, translation_expected=True)
    o.add_final(1, "F1", 1.5, translation_expected=True)
    assert o.release(1.5) == ["F0"]
    o.add_translation(1, "T1", 1.6)
    assert o.release(1.6) == []
    o.add_translation(0, "T0", 1.7)
    assert o.release(1.7) == ["T0", "F1", "T1"]


def test_a_missing_result_is_skipped_after_the_wait_and_delivered_late() -> None:
    o = make(wait=5.0)
    o.expect_final(0, 0.0)
    o.expect_final(1, 0.0)
    o.add_final(1, "F1", 2.0)
    assert o.release(2.0) == []
    assert o.next_deadline() == 5.0
    assert o.release(4.9) == []
    assert o.release(5.0) == ["F1"]
    assert o.skipped == 1 and o.idle
    # It turns up after all: sent once, late, not lost; a second copy is a duplicate.
    assert o.add_final(0, "F0", 9.0)
    assert o.release(9.0) == ["F0"]
    assert not o.add_final(0, "F0 again", 9.5) and o.release(9.5) == []
    assert o.late == 1


def test_a_missing_translation_does_not_block_forever() -> None:
    o = make(wait=3.0)
    o.expect_final(0, 0.0)
    o.expect_final(1, 0.0)
    o.add_final(0, "F0", 1.0, translation_expected=True)
    assert o.release(1.0) == ["F0"]
    o.add_final(1, "F1", 1.5)
    assert o.release(1.5) == []
    assert o.release(3.9) == []  # the translation has been awaited 2.9 s of 3
    assert o.release(4.0) == ["F1"]


def test_nothing_is_skipped_while_nothing_waits_behind_it() -> None:
    o = make(wait=2.0)
    o.expect_final(0, 0.0)
    assert o.release(100.0) == []  # a slow final blocks nobody: keep waiting
    o.add_final(0, "F0", 101.0)
    assert o.release(101.0) == ["F0"]


def test_draining_skips_what_never_comes() -> None:
    o = make(wait=2.0)
    o.expect_final(0, 0.0)
    o.add_final(0, "F0", 0.5, translation_expected=True)
    assert o.release(0.5) == ["F0"]
    assert o.release(2.0, draining=True) == []
    assert not o.idle
    assert o.release(2.5, draining=True) == []
    assert o.idle and o.skipped == 1


def test_duplicates_are_dropped() -> None:
    o = make()
    o.expect_final(0, 0.0)
    assert o.add_final(0, "F0", 1.0, translation_expected=True)
    assert not o.add_final(0, "F0 dup held", 1.0)  # before release
    assert o.release(1.0) == ["F0"]
    assert not o.add_final(0, "F0 dup", 1.1)  # after release
    assert o.add_translation(0, "T0", 1.2)
    assert not o.add_translation(0, "T0 dup", 1.3)
    assert o.release(1.3) == ["T0"]
    assert o.duplicates == 3


def test_an_unannounced_final_is_still_delivered() -> None:
    o = make()
    assert o.add_final(7, "F7", 1.0)
    assert o.release(1.0) == ["F7"]


def test_partials_are_dropped_once_their_final_is_in() -> None:
    o = make()
    assert o.add_partial(0, 1)
    assert o.add_partial(0, 3)
    assert not o.add_partial(0, 2)  # older than one already shown
    o.expect_final(0, 0.0)
    o.add_final(0, "F0", 1.0)  # arrived, even before release
    assert not o.add_partial(0, 4)
    o.release(1.0)
    assert not o.add_partial(0, 5)
    assert o.add_partial(1, 6)
    o.add_final(2, "F2", 2.0)
    assert not o.add_partial(1, 7)  # a later final arrived: utterance 1 is over


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_any_arrival_order_gives_utterance_order_exactly_once(
    translations: list[bool], rnd: random.Random
) -> None:
    o = make(wait=1000.0)
    events: list[tuple[str, int]] = []
    for i, tr in enumerate(translations):
        o.expect_final(i, 0.0)
        events.append(("final", i))
        if tr:
            events.append(("translation", i))
    # A translation never arrives before its final in the pipeline, but finals of different
    # utterances and translations of earlier ones interleave freely; duplicates happen.
    rnd.shuffle(events)
    events += rnd.sample(events, k=min(3, len(events)))
    finals_seen: set[int] = set()
    out: list[str] = []
    t = 0.0
    for kind, i in events:
        t += 0.1
        if kind == "final":
            o.add_final(i, f"F{i}", t, translation_expected=translations[i])
            finals_seen.add(i)
        elif i in finals_seen:
            o.add_translation(i, f"T{i}", t)
        else:
            continue
        out += o.release(t)
    # Deliver any translation that was held back because its final had not come yet.
    for i, tr in enumerate(translations):
        if tr:
            o.add_translation(i, f"T{i}", t)
    out += o.release(t)
    expected = [x for i, tr in enumerate(translations) for x in ([f"F{i}", f"T{i}"] if tr else [f"F{i}"])]
    assert out == expected
    assert o.idle
