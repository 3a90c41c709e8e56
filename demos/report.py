"""Render a :class:`demos.metrics.Report` as the human-readable table the client prints."""

from __future__ import annotations

from demos.metrics import Report

LATENCY_LABELS = {
    "final": "end of speech -> final",
    "final_after_silence_threshold": "silence threshold elapsed -> final",
    "first_partial_after_speech_onset": "speech onset -> first partial",
    "first_partial_after_end_of_speech": "end of speech -> first partial",
    "translation_after_final": "final -> translation",
}


def _num(value: float | None, fmt: str = "{:7.2f}") -> str:
    return fmt.format(value) if value is not None else f"{'-':>7}"


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "n/a"


def _distribution_lines(title: str, counts: dict[str, int]) -> list[str]:
    total = sum(counts.values())
    lines = [title]
    if not counts:
        lines.append("  (none)")
    for name, count in counts.items():
        lines.append(f"  {name:<36} {count:>6}  {count / total * 100:5.1f}%")
    return lines


def format_report(report: Report, heading: str) -> str:
    """A fixed-width table: success, latency percentiles, throughput, workers, errors."""
    lines = [heading, "=" * len(heading)]
    wer_langs = ", ".join(f"{lang} {_pct(w)}" for lang, w in report.wer_by_language.items())
    lines.append(
        f"Success rate   {_pct(report.success_rate)} ({report.succeeded}/{report.sessions} "
        f"sessions)   WER {_pct(report.wer)}" + (f" ({wer_langs})" if wer_langs else "")
    )
    if report.unexpected_finals:
        lines.append(f"Unexpected finals (matching no utterance): {report.unexpected_finals}")
    lines += ["", f"{'Latency (seconds)':<38} {'n':>5} {'p50':>7} {'p95':>7} {'max':>7}"]
    for key, label in LATENCY_LABELS.items():
        dist = report.latency[key]
        lines.append(
            f"  {label:<36} {dist.count:>5} {_num(dist.p50)} {_num(dist.p95)} {_num(dist.max)}"
        )
    t = report.throughput
    lines += [
        "",
        "Throughput",
        f"  results per second (finals + translations) {t['results_per_second']:8.2f}",
        f"  finals per second                          {t['finals_per_second']:8.2f}",
        f"  audio seconds per wall second              {t['audio_seconds_per_second']:8.2f}",
        (
            f"  ({t['audio_seconds']:.1f} s of audio in {t['wall_seconds']:.1f} s; "
            f"{int(t['finals'])} finals, {int(t['translations'])} translations, "
            f"{int(t['partials'])} partials)"
        ),
        "",
    ]
    lines += _distribution_lines("Worker distribution (finals)", report.worker_distribution)
    if report.translation_worker_distribution:
        lines += _distribution_lines(
            "Worker distribution (translations)", report.translation_worker_distribution
        )
    lines += ["", "Errors by code"]
    if not report.errors:
        lines.append("  (none)")
    for code, count in report.errors.items():
        lines.append(f"  {code:<36} {count:>6}")
    for failed in report.failed_sessions[:10]:
        lines.append(
            f"  failed session {failed['session']} (batch {failed['batch']}, clip "
            f"{failed['clip']}): done={failed['done']}, utterances without final="
            f"{failed['utterances_without_final']}, errors={failed['errors']}"
        )
    return "\n".join(lines)
