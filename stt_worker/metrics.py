"""Prometheus metrics of the STT worker (module level: one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INFERENCE_SECONDS = Histogram(
    "stt_inference_seconds",
    "Wall time of one batched inference call",
    ["kind"],
    buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
BATCH_SIZE = Histogram("stt_batch_size", "Jobs per inference batch", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32))
JOBS = Counter("stt_jobs_total", "STT jobs by kind and outcome", ["kind", "outcome"])
SKIPPED_PARTIALS = Counter("stt_partials_skipped_total", "Partial jobs skipped without inference", ["reason"])
SESSION_AUDIO_READ_SECONDS = Counter(
    "stt_session_audio_read_seconds_total",
    "Seconds of audio read from the sessions' audio streams for partials by reference (bytes = 32000 x this)",
)
MODEL_LOAD_SECONDS = Gauge("stt_model_load_seconds", "Time the model took to load")
QUEUE_WAIT_SECONDS = Histogram(
    "stt_queue_wait_seconds",
    "Time a job waited in audio_jobs before inference",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
RSS_BYTES = Gauge("process_rss_bytes_sampled", "Resident set size of this worker, sampled")
# Finals only (partials repeat the same utterance); labels are Whisper's language codes
# (about 100 values at most), never free text.
LANGUAGE_DETECTIONS = Counter(
    "stt_language_detections_total", "Languages answered by automatic detection (finals)", ["language"]
)
LANGUAGE_OUTSIDE_SET = Counter(
    "stt_language_outside_set_total",
    "Detections where unrestricted detection would have answered a language outside the allowed "
    "set, by that language (the answer given is counted in stt_language_detections_total)",
    ["language"],
)
