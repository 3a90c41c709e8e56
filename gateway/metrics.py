"""Prometheus metrics of the gateway (module level: one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)

SESSIONS = Gauge("gateway_sessions", "Open client sessions")
SESSIONS_TOTAL = Counter("gateway_sessions_opened", "Sessions opened, by how", ["kind"])
UTTERANCES = Counter("gateway_utterances_total", "Utterances cut by the segmenter, by reason", ["reason"])
PARTIAL_JOBS = Counter("gateway_partial_jobs_total", "Partial jobs, by outcome", ["outcome"])
COMMITS = Counter(
    "gateway_commits_total", "Pieces of a turn committed as finals, by reason: pause, agreement, max_length, "
    "turn_end", ["reason"]
)
JOB_AUDIO_SECONDS = Counter(
    "gateway_job_audio_seconds_total",
    "Seconds of audio put on the bus (bytes = 32000 x this): in audio_jobs entries by job kind (final; "
    "partial, 0 since partials name theirs), and session_audio, the sessions' audio streams partials name",
    ["kind"],
)
PARTIAL_AUDIO_SECONDS = Histogram(
    "gateway_partial_audio_seconds", "Audio carried by one partial job (the uncommitted tail)",
    buckets=(0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0),
)
PARTIALS_SENT = Counter("gateway_partials_sent_total", "realtime messages sent to clients")
RESULTS_SENT = Counter("gateway_results_sent_total", "Results sent to clients, by type", ["type"])
REFUSED = Counter("gateway_refused_total", "Refused inputs and connections, by code", ["code"])
MEMORY_TRIMS = Counter("gateway_memory_trims_total", "Free heap given back to the system, by occasion", ["when"])
QUEUE_DEPTH = Gauge("gateway_audio_jobs_depth", "Depth of audio_jobs as last seen by the gateway")
FINAL_LATENCY = Histogram(
    "gateway_final_latency_seconds",
    "End of speech to final sent, silence threshold included",
    buckets=_LATENCY_BUCKETS,
)
FINAL_LATENCY_AFTER_THRESHOLD = Histogram(
    "gateway_final_after_threshold_seconds",
    "Utterance end decided (silence threshold elapsed) to final sent",
    buckets=_LATENCY_BUCKETS,
)
PIPELINE_OVERHEAD = Histogram(
    "gateway_pipeline_overhead_seconds",
    "Final job queued to its result received, minus the worker's inference time: Redis hops, "
    "queueing, batching, encoding and decoding",
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FIRST_PARTIAL_LATENCY = Histogram(
    "gateway_first_partial_seconds",
    "Speech onset to the utterance's first realtime message",
    buckets=_LATENCY_BUCKETS,
)
