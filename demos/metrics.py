"""Pure bookkeeping for the demo client: match finals to expected utterances, time them,
and summarise many sessions into latency, throughput, success, WER and worker figures.

No sockets, no asyncio: the client records what it sent and received with wall-clock
stamps (``time.perf_counter``) and hands the records here.

How "end of speech" becomes a wall-clock time
---------------------------------------------
The manifest gives each utterance's end in *clip* seconds. The client streams the clip
like a microphone: chunk ``k`` covers clip time ``[k*c, (k+1)*c)`` and is sent once that
much audio "has been recorded", i.e. at ``t0 + (k+1)*c / speed``. The client records the
real send time of every chunk (pacing can slip under load), so clip time ``t`` maps to the
wall time at which the chunk *containing* ``t`` left the client (:class:`SendClock`).
This is the earliest moment the gateway could know about that sample, so

* ``final`` latency = arrival of the utterance's (last) final - wall time of its last
  speech sample. It includes the silence the gateway must wait for before it may decide
  that speech ended (``SILENCE_THRESHOLD_SECONDS`` of *audio*, i.e. threshold / speed of
  wall time), so at real-time pace it can never be below the threshold;
* ``final_after_silence_threshold`` = arrival - wall time at which clip time
  ``end + threshold`` was sent (or the ``end`` message, if the clip ran out first): the
  part of the latency the pipeline itself adds (VAD decision, queueing, inference,
  delivery). The threshold comes from the server's ``ready`` message when it states it,
  otherwise from ``--silence-threshold``;
* ``first_partial_after_speech_onset`` = first partial of the utterance - wall time of
  its first speech sample (how soon a user sees text); ``first_partial_after_end_of_speech``
  is the same partial against the end of speech and is usually *negative* (the partial
  arrived while the speaker was still talking), which is the point of partials;
* ``translation_after_final`` = arrival of a segment's translation - arrival of its final.

Matching finals to utterances uses the final's ``start``/``end`` (clip seconds): a final
belongs to the utterance it overlaps most; a final with no overlap goes to the nearest
utterance within :data:`MATCH_TOLERANCE` seconds, otherwise it is "unexpected". Finals
without times are matched in order. An utterance split into several finals is complete
at its last final; its text is their concatenation. A final that spans several utterances
(streaming commits inside a conversational turn) also completes each one whose end it holds.
WER is always computed over the concatenation of all finals against the whole reference.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jiwer
import numpy as np

from demos.manifest import Clip, Utterance

MATCH_TOLERANCE = 1.5
#: A final whose span reaches this close to a sentence's end holds that sentence's last word.
SPAN_SLACK = 0.35

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        # "real-time" and "real time" are the same words to a listener.
        jiwer.SubstituteRegexes({r"[-\u2010-\u2014]": " "}),
        jiwer.RemovePunctuation(),  # type: ignore[no-untyped-call,unused-ignore]
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


@dataclass(frozen=True)
class Received:
    """One JSON message from the gateway and when it arrived."""

    at: float
    message: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))


class SendClock:
    """Maps clip time to the wall time the chunk holding it was sent."""

    def __init__(self) -> None:
        self._audio_ends: list[float] = []
        self._walls: list[float] = []
        self.end_sent_at: float | None = None

    def record(self, audio_end: float, wall: float) -> None:
        self._audio_ends.append(audio_end)
        self._walls.append(wall)

    @property
    def audio_sent(self) -> float:
        return self._audio_ends[-1] if self._audio_ends else 0.0

    @property
    def started_at(self) -> float | None:
        return self._walls[0] if self._walls else None

    def wall_at(self, clip_time: float) -> float | None:
        """When clip time ``clip_time`` reached the gateway's socket (None if never)."""
        index = bisect.bisect_left(self._audio_ends, clip_time - 1e-9)
        if index < len(self._walls):
            return self._walls[index]
        # Past the last chunk: the ``end`` message is what tells the gateway.
        return self.end_sent_at


@dataclass
class SessionRecord:
    """Everything one client session sent and received."""

    index: int
    clip: Clip
    batch: int = 0
    clock: SendClock = field(default_factory=SendClock)
    received: list[Received] = field(default_factory=list)
    done: bool = False
    client_errors: list[str] = field(default_factory=list)
    silence_threshold: float = 2.0
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass(frozen=True)
class UtteranceTiming:
    utterance: Utterance
    finals: tuple[Received, ...]
    final: float | None = None
    final_after_threshold: float | None = None
    partial_after_onset: float | None = None
    partial_after_end: float | None = None
    translations: tuple[float, ...] = ()

    @property
    def hypothesis(self) -> str:
        return " ".join(str(f.message.get("text", "")).strip() for f in self.finals).strip()


@dataclass(frozen=True)
class SessionResult:
    record: SessionRecord
    utterances: tuple[UtteranceTiming, ...]
    unexpected_finals: int
    succeeded: bool
    errors: dict[str, int]
    hypothesis: str


def _span(message: dict[str, Any]) -> tuple[float, float] | None:
    start, end = message.get("start"), message.get("end")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        return float(start), float(end)
    return None


def match_finals(
    utterances: tuple[Utterance, ...], spans: list[tuple[float, float] | None]
) -> tuple[list[list[int]], list[int]]:
    """Assign each final (by index) to an utterance; return (per-utterance lists, unmatched)."""
    assigned: list[list[int]] = [[] for _ in utterances]
    unmatched: list[int] = []
    next_in_order = 0
    for index, span in enumerate(spans):
        if not utterances:
            unmatched.append(index)
            continue
        if span is None:
            # No times: assume the gateway delivers one final per utterance, in order.
            if next_in_order < len(utterances):
                assigned[next_in_order].append(index)
                next_in_order += 1
            else:
                unmatched.append(index)
            continue
        start, end = span
        overlaps = [max(0.0, min(end, u.end) - max(start, u.start)) for u in utterances]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= 0.0:
            gaps = [max(u.start - end, start - u.end) for u in utterances]
            best = int(np.argmin(gaps))
            if gaps[best] > MATCH_TOLERANCE:
                unmatched.append(index)
                continue
        assigned[best].append(index)
        next_in_order = best + 1
    # A final committed inside a turn may span several sentences (streaming commits): it also
    # completes any sentence whose end it holds that no final of its own went to.
    for u, utt in enumerate(utterances):
        if assigned[u]:
            continue
        for index, span in enumerate(spans):
            if span is not None and span[0] - SPAN_SLACK <= utt.end <= span[1] + SPAN_SLACK:
                assigned[u].append(index)
                break
    return assigned, unmatched


def _diff(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return later - earlier


def analyse_session(record: SessionRecord) -> SessionResult:
    """Match finals, compute per-utterance timings and decide success."""
    finals = [r for r in record.received if r.type == "final"]
    utterances = record.clip.utterances
    assigned, unmatched = match_finals(utterances, [_span(f.message) for f in finals])
    partial_first: dict[Any, float] = {}
    translation_at: dict[Any, float] = {}
    for r in record.received:
        seg = r.message.get("segment_id")
        if r.type == "realtime" and seg is not None:
            partial_first.setdefault(seg, r.at)
        elif r.type == "translation" and seg is not None:
            translation_at.setdefault(seg, r.at)
    clock = record.clock
    timings: list[UtteranceTiming] = []
    for utt, indexes in zip(utterances, assigned, strict=True):
        mine = tuple(finals[i] for i in indexes)
        if not mine:
            timings.append(UtteranceTiming(utt, mine))
            continue
        last = mine[-1].at
        segments = [f.message.get("segment_id") for f in mine]
        partials = [partial_first[s] for s in segments if s in partial_first]
        first_partial = min(partials) if partials else None
        translations = tuple(
            translation_at[f.message.get("segment_id")] - f.at
            for f in mine
            if f.message.get("segment_id") in translation_at
        )
        timings.append(
            UtteranceTiming(
                utt,
                mine,
                final=_diff(last, clock.wall_at(utt.end)),
                final_after_threshold=_diff(
                    last, clock.wall_at(utt.end + record.silence_threshold)
                ),
                partial_after_onset=_diff(first_partial, clock.wall_at(utt.start)),
                partial_after_end=_diff(first_partial, clock.wall_at(utt.end)),
                translations=translations,
            )
        )
    errors = Counter(str(r.message.get("code", "unknown")) for r in record.received if r.type == "error")
    errors.update(record.client_errors)
    complete = all(t.finals for t in timings)
    hypothesis = " ".join(str(f.message.get("text", "")).strip() for f in finals).strip()
    return SessionResult(
        record=record,
        utterances=tuple(timings),
        unexpected_finals=len(unmatched),
        succeeded=record.done and complete and not record.client_errors,
        errors=dict(errors),
        hypothesis=hypothesis,
    )


@dataclass(frozen=True)
class Distribution:
    """Summary of a latency sample, in seconds."""

    count: int
    p50: float | None
    p95: float | None
    max: float | None
    mean: float | None

    @classmethod
    def of(cls, values: list[float]) -> Distribution:
        if not values:
            return cls(0, None, None, None, None)
        arr = np.asarray(values, dtype=np.float64)
        return cls(
            count=int(arr.size),
            p50=float(np.percentile(arr, 50)),
            p95=float(np.percentile(arr, 95)),
            max=float(arr.max()),
            mean=float(arr.mean()),
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "max": self.max, "mean": self.mean}


LATENCY_KEYS = (
    "final",
    "final_after_silence_threshold",
    "first_partial_after_speech_onset",
    "first_partial_after_end_of_speech",
    "translation_after_final",
)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float | None:
    """Corpus WER after lower-casing and removing punctuation (None without reference words)."""
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r.strip()]
    if not pairs:
        return None
    refs, hyps = zip(*pairs, strict=True)
    return float(
        jiwer.wer(list(refs), list(hyps), reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE)
    )


@dataclass(frozen=True)
class Report:
    """The figures the demo client prints and writes as JSON."""

    sessions: int
    succeeded: int
    latency: dict[str, Distribution]
    throughput: dict[str, float]
    worker_distribution: dict[str, int]
    translation_worker_distribution: dict[str, int]
    errors: dict[str, int]
    wer: float | None
    wer_by_language: dict[str, float | None]
    unexpected_finals: int
    failed_sessions: list[dict[str, Any]]

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.sessions if self.sessions else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "success_rate": self.success_rate,
            "sessions": self.sessions,
            "sessions_succeeded": self.succeeded,
            "latency": {k: v.as_dict() for k, v in self.latency.items()},
            "throughput": self.throughput,
            "worker_distribution": self.worker_distribution,
            "translation_worker_distribution": self.translation_worker_distribution,
            "errors": self.errors,
            "wer": self.wer,
            "wer_by_language": self.wer_by_language,
            "unexpected_finals": self.unexpected_finals,
            "failed_sessions": self.failed_sessions,
        }


def summarise(records: list[SessionRecord], wall_seconds: float) -> Report:
    """Aggregate sessions run over ``wall_seconds`` of wall time into one report."""
    results = [analyse_session(r) for r in records]
    samples: dict[str, list[float]] = {k: [] for k in LATENCY_KEYS}
    workers: Counter[str] = Counter()
    translation_workers: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    finals = partials = translations = 0
    for result in results:
        errors.update(result.errors)
        for r in result.record.received:
            if r.type == "final":
                finals += 1
                workers[str(r.message.get("worker") or "unknown")] += 1
            elif r.type == "translation":
                translations += 1
                translation_workers[str(r.message.get("worker") or "unknown")] += 1
            elif r.type == "realtime":
                partials += 1
        for t in result.utterances:
            for key, value in (
                ("final", t.final),
                ("final_after_silence_threshold", t.final_after_threshold),
                ("first_partial_after_speech_onset", t.partial_after_onset),
                ("first_partial_after_end_of_speech", t.partial_after_end),
            ):
                if value is not None:
                    samples[key].append(value)
            samples["translation_after_final"].extend(t.translations)
    audio_seconds = sum(r.clock.audio_sent for r in records)
    per_second = (lambda n: n / wall_seconds) if wall_seconds > 0 else (lambda n: 0.0)
    by_language: dict[str, tuple[list[str], list[str]]] = {}
    for result in results:
        refs, hyps = by_language.setdefault(result.record.clip.language, ([], []))
        refs.append(result.record.clip.reference_text)
        hyps.append(result.hypothesis)
    all_refs = [ref for refs, _ in by_language.values() for ref in refs]
    all_hyps = [hyp for _, hyps in by_language.values() for hyp in hyps]
    failed = [
        {
            "session": r.record.index,
            "batch": r.record.batch,
            "clip": r.record.clip.name,
            "done": r.record.done,
            "utterances_without_final": sum(1 for t in r.utterances if not t.finals),
            "errors": r.errors,
        }
        for r in results
        if not r.succeeded
    ]
    return Report(
        sessions=len(results),
        succeeded=sum(1 for r in results if r.succeeded),
        latency={k: Distribution.of(v) for k, v in samples.items()},
        throughput={
            "wall_seconds": wall_seconds,
            "audio_seconds": audio_seconds,
            "audio_seconds_per_second": per_second(audio_seconds),
            "results_per_second": per_second(finals + translations),
            "finals_per_second": per_second(finals),
            "finals": finals,
            "translations": translations,
            "partials": partials,
        },
        worker_distribution=dict(sorted(workers.items())),
        translation_worker_distribution=dict(sorted(translation_workers.items())),
        errors=dict(sorted(errors.items())),
        wer=word_error_rate(all_refs, all_hyps),
        wer_by_language={lang: word_error_rate(*pair) for lang, pair in sorted(by_language.items())},
        unexpected_finals=sum(r.unexpected_finals for r in results),
        failed_sessions=failed,
    )
