"""Unit tests for the pure bookkeeping in demos.metrics."""

from __future__ import annotations

from typing import Any

import pytest

from demos.manifest import Clip, Utterance
from demos.metrics import (
    Distribution,
    Received,
    SendClock,
    SessionRecord,
    analyse_session,
    match_finals,
    summarise,
    word_error_rate,
)

UTTS = (Utterance("hello world", 0.5, 2.0), Utterance("good bye", 5.0, 6.0))
CLIP = Clip("en", "en.wav", "en", 16000, 9.0, UTTS)


def paced_clock(t0: float = 100.0, chunk: float = 0.5, duration: float = 9.0,
                speed: float = 1.0) -> SendClock:
    clock = SendClock()
    n = round(duration / chunk)
    for k in range(1, n + 1):
        clock.record(k * chunk, t0 + k * chunk / speed)
    clock.end_sent_at = t0 + duration / speed + 0.01
    return clock


def final(at: float, seg: int, start: float | None, end: float | None, text: str,
          worker: str = "w1") -> Received:
    msg: dict[str, Any] = {"type": "final", "segment_id": seg, "text": text, "worker": worker}
    if start is not None:
        msg.update(start=start, end=end)
    return Received(at, msg)


def test_send_clock_maps_clip_time_to_send_time_of_its_chunk() -> None:
    clock = paced_clock(chunk=0.5)
    assert clock.wall_at(0.0) == 100.5
    assert clock.wall_at(0.5) == 100.5  # a sample at a chunk's end rides in that chunk
    assert clock.wall_at(0.6) == 101.0
    assert clock.wall_at(9.0) == 109.0
    assert clock.wall_at(12.0) == clock.end_sent_at  # past the audio, `end` tells the server
    assert clock.audio_sent == 9.0


def test_send_clock_respects_speed() -> None:
    clock = paced_clock(chunk=0.5, speed=4.0)
    assert clock.wall_at(2.0) == pytest.approx(100.5)


def test_match_by_overlap_tolerance_and_order() -> None:
    spans: list[tuple[float, float] | None] = [(0.0, 2.4), (4.8, 6.5), (8.9, 9.0)]
    assigned, unmatched = match_finals(UTTS, spans)
    assert assigned == [[0], [1]]
    assert unmatched == [2]  # 2.9 s past the last utterance: beyond tolerance
    assigned, unmatched = match_finals(UTTS, [(2.5, 3.0)])  # gap 0.5 s: nearest wins
    assert assigned == [[0], []]
    assigned, unmatched = match_finals(UTTS, [None, None, None])
    assert assigned == [[0], [1]] and unmatched == [2]


def test_split_utterance_is_complete_at_its_last_final() -> None:
    record = SessionRecord(0, CLIP, clock=paced_clock(), done=True)
    record.received = [
        Received(101.0, {"type": "realtime", "segment_id": 1, "text": "hel"}),
        final(104.0, 1, 0.4, 1.2, "Hello,"),
        final(104.5, 2, 1.3, 2.1, "world."),
        final(108.5, 3, 4.9, 6.1, "Good-bye!"),
        Received(108.9, {"type": "translation", "segment_id": 3, "text": "Adieu"}),
    ]
    result = analyse_session(record)
    assert result.succeeded
    first = result.utterances[0]
    assert first.hypothesis == "Hello, world."
    assert first.final == pytest.approx(104.5 - 102.0)  # end 2.0 s sent at t0 + 2.0
    assert first.final_after_threshold == pytest.approx(104.5 - 104.0)  # threshold 2.0
    assert first.partial_after_onset == pytest.approx(101.0 - 100.5)
    assert first.partial_after_end == pytest.approx(101.0 - 102.0)
    assert result.utterances[1].translations == pytest.approx((0.4,))
    # end 6.0 + threshold 2.0 = clip time 8.0, still inside the 9 s clip: sent at t0 + 8.0.
    assert result.utterances[1].final_after_threshold == pytest.approx(108.5 - 108.0)


def test_session_fails_without_done_or_with_missing_final_or_client_error() -> None:
    base = [final(104.0, 1, 0.5, 2.0, "hello world"), final(108.0, 2, 5.0, 6.0, "good bye")]
    assert analyse_session(SessionRecord(0, CLIP, received=base, done=True)).succeeded
    assert not analyse_session(SessionRecord(0, CLIP, received=base, done=False)).succeeded
    assert not analyse_session(SessionRecord(0, CLIP, received=base[:1], done=True)).succeeded
    broken = SessionRecord(0, CLIP, received=base, done=True, client_errors=["closed_1011"])
    result = analyse_session(broken)
    assert not result.succeeded
    assert result.errors == {"closed_1011": 1}


def test_summarise_aggregates_latency_workers_errors_and_throughput() -> None:
    records = []
    for index, worker in enumerate(("w1", "w2")):
        record = SessionRecord(index, CLIP, clock=paced_clock(), done=True)
        record.received = [
            final(103.0 + index, 1, 0.5, 2.0, "hello world", worker),
            final(107.0, 2, 5.0, 6.0, "good buy", worker),
            Received(107.1, {"type": "error", "code": "overloaded", "message": "x"}),
        ]
        records.append(record)
    report = summarise(records, wall_seconds=10.0)
    assert report.success_rate == 1.0
    assert report.worker_distribution == {"w1": 2, "w2": 2}
    assert report.errors == {"overloaded": 2}
    assert report.latency["final"].count == 4
    assert report.latency["final"].max == pytest.approx(2.0)
    assert report.latency["translation_after_final"].count == 0
    assert report.throughput["audio_seconds"] == pytest.approx(18.0)
    assert report.throughput["audio_seconds_per_second"] == pytest.approx(1.8)
    assert report.throughput["results_per_second"] == pytest.approx(0.4)
    assert report.wer == pytest.approx(2 / 8)  # "buy" wrong in each of two 4-word sessions
    doc = report.as_dict()
    assert {"latency", "throughput", "success_rate", "worker_distribution"} <= set(doc)


def test_distribution_percentiles_and_empty() -> None:
    dist = Distribution.of([float(x) for x in range(1, 101)])
    assert dist.p50 == pytest.approx(50.5)
    assert dist.p95 == pytest.approx(95.05)
    assert dist.max == 100.0
    assert Distribution.of([]).p50 is None


def test_wer_normalises_case_punctuation_and_hyphens() -> None:
    assert word_error_rate(["Real time transcription, please."],
                           ["real-time Transcription please"]) == 0.0
    assert word_error_rate(["one two"], [""]) == 1.0
    assert word_error_rate([""], ["anything"]) is None


def test_a_final_spanning_two_sentences_completes_both() -> None:
    from demos.manifest import Utterance
    from demos.metrics import match_finals

    utterances = (Utterance("One two.", 0.5, 2.0), Utterance("Three four.", 2.2, 4.0), Utterance("Five.", 4.3, 5.0))
    # Streaming commits: one final for the first two sentences, one for the third.
    assigned, unmatched = match_finals(utterances, [(0.5, 4.0), (4.3, 5.1)])
    assert assigned == [[0], [0], [1]] and unmatched == []
