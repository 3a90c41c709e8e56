"""The partial/final job selector: ordering, overtaking, age and bounded memory."""

from __future__ import annotations

from stt_worker.scheduling import JobDescriptor, JobSelector, SkipReason

NOW = 1000.0


def final(key: str, session: str, utt: int, created: float = NOW) -> JobDescriptor:
    return JobDescriptor(key, "final", session, utt, created)


def partial(key: str, session: str, utt: int, seq: int, created: float = NOW) -> JobDescriptor:
    return JobDescriptor(key, "partial", session, utt, created, seq)


def keys(jobs: list[JobDescriptor]) -> list[str]:
    return [j.key for j in jobs]


def test_finals_run_before_partials_in_creation_order() -> None:
    sel = JobSelector()
    jobs = [
        partial("p1", "a", 1, 0, NOW - 0.1),
        final("f2", "b", 0, NOW - 0.2),
        final("f1", "a", 0, NOW - 0.5),
    ]
    out = sel.select(jobs, NOW)
    assert keys(out.to_run) == ["f1", "f2", "p1"]
    assert out.skipped == []


def test_newer_partial_in_same_fetch_overtakes_older() -> None:
    sel = JobSelector()
    out = sel.select([partial("old", "a", 0, 1), partial("new", "a", 0, 2)], NOW)
    assert keys(out.to_run) == ["new"]
    assert [(s.key, s.reason) for s in out.skipped] == [("old", SkipReason.SUPERSEDED_BY_PARTIAL)]


def test_final_in_same_fetch_overtakes_partial_of_its_utterance() -> None:
    sel = JobSelector()
    out = sel.select([partial("p", "a", 3, 5), final("f", "a", 3)], NOW)
    assert keys(out.to_run) == ["f"]
    assert out.skipped[0].reason is SkipReason.SUPERSEDED_BY_FINAL


def test_final_seen_earlier_overtakes_late_partial() -> None:
    sel = JobSelector()
    sel.select([final("f", "a", 3)], NOW)
    out = sel.select([partial("p", "a", 3, 9)], NOW)
    assert out.to_run == []
    assert out.skipped[0].reason is SkipReason.SUPERSEDED_BY_FINAL


def test_partial_seen_earlier_overtakes_older_partial() -> None:
    sel = JobSelector()
    sel.select([partial("p2", "a", 0, 2)], NOW)
    out = sel.select([partial("p1", "a", 0, 1)], NOW)
    assert out.skipped[0].reason is SkipReason.SUPERSEDED_BY_PARTIAL


def test_partial_of_later_utterance_is_not_skipped_by_earlier_final() -> None:
    sel = JobSelector()
    out = sel.select([final("f", "a", 3), partial("p", "a", 4, 0)], NOW)
    assert keys(out.to_run) == ["f", "p"]


def test_other_sessions_do_not_interfere() -> None:
    sel = JobSelector()
    out = sel.select([final("f", "a", 3), partial("p", "b", 3, 0)], NOW)
    assert keys(out.to_run) == ["f", "p"]


def test_old_partial_is_skipped_but_old_final_runs() -> None:
    sel = JobSelector(partial_max_age=2.0)
    out = sel.select([partial("p", "a", 0, 0, NOW - 2.5), final("f", "b", 0, NOW - 60)], NOW)
    assert keys(out.to_run) == ["f"]
    assert out.skipped[0].reason is SkipReason.TOO_OLD
    assert str(out.skipped[0].reason) == "too_old"  # usable as a metrics label


def test_duplicate_partial_delivery_runs_once_and_finals_never_dropped() -> None:
    sel = JobSelector()
    out = sel.select(
        [
            partial("x1", "a", 0, 1),
            partial("x2", "a", 0, 1),
            final("f1", "a", 0),
            final("f2", "a", 0),
        ],
        NOW,
    )
    assert keys(out.to_run) == ["f1", "f2"]
    assert len(out.skipped) == 2
    out = sel.select([partial("y1", "b", 0, 1), partial("y2", "b", 0, 1)], NOW)
    assert keys(out.to_run) == ["y1"]
    assert keys([s.job for s in out.skipped]) == ["y2"]


def test_memory_is_bounded_lru() -> None:
    sel = JobSelector(max_sessions=3)
    for i in range(10):
        sel.select([final(f"f{i}", f"s{i}", 0)], NOW)
    assert len(sel) == 3
    # s0 was forgotten: its stale partial now runs (the documented cost of forgetting).
    assert keys(sel.select([partial("p", "s0", 0, 0)], NOW).to_run) == ["p"]
    # s9 is remembered.
    assert sel.select([partial("q", "s9", 0, 0)], NOW).to_run == []


def test_fetch_larger_than_memory_does_not_fail() -> None:
    sel = JobSelector(max_sessions=2)
    jobs = [partial(f"p{i}", f"s{i}", 0, 0) for i in range(5)]
    assert len(sel.select(jobs, NOW).to_run) == 5


def test_an_early_final_does_not_stop_the_partials_of_its_utterance() -> None:
    """Defect 2 of issue 13: a speculative (early) final of an open utterance is a guess; if
    the speaker resumes, the utterance's later partials must still run."""
    sel = JobSelector()
    early = JobDescriptor("early", "final", "a", 0, NOW - 0.1, speculative=True)
    out = sel.select([early], NOW)
    assert keys(out.to_run) == ["early"]
    later = sel.select([partial("p", "a", 0, 5)], NOW + 1.0)
    assert keys(later.to_run) == ["p"] and later.skipped == []
    # The real final of the utterance still overtakes its partials.
    sel.select([final("f", "a", 0, NOW + 1.5)], NOW + 1.5)
    last = sel.select([partial("late", "a", 0, 6, NOW + 1.6)], NOW + 1.6)
    assert [(s.key, s.reason) for s in last.skipped] == [("late", SkipReason.SUPERSEDED_BY_FINAL)]


def test_pieces_of_uploads_run_after_live_finals_and_partials_and_are_never_skipped() -> None:
    sel = JobSelector(partial_max_age=2.0)
    old_piece = JobDescriptor("u0", "final", "upload-x", 0, NOW - 30.0, priority="batch")
    jobs = [
        old_piece,
        JobDescriptor("u1", "final", "upload-x", 1, NOW - 0.1, priority="batch"),
        partial("p1", "a", 1, 0, NOW - 0.1),
        final("f1", "a", 0, NOW - 0.05),
    ]
    out = sel.select(jobs, NOW)
    assert keys(out.to_run) == ["f1", "p1", "u0", "u1"]
    assert keys(out.live_finals) == ["f1"] and keys(out.partials) == ["p1"]
    assert keys(out.batch_finals) == ["u0", "u1"]  # a piece is a final: age never skips it
    assert out.skipped == []
