"""Settings for every service, read once from the environment at start.

Each service builds one frozen settings object (pydantic-settings) in its ``__main__``,
validates it and passes it down; nothing else reads the environment. Variable names and
defaults are the seed's (DESIGN.md section 6). Where a seed default cannot run on a machine
without a GPU or internet it adapts: ``DEVICE=auto`` instead of ``cuda``, ``MODEL_SIZE=base``
(shipped in a package) instead of ``large-v3`` (a download).

Secrets (the Redis URL may carry a password, the JWT secret) are ``SecretStr``: their repr and
str print ``**********``; code that needs the value calls ``get_secret_value()``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from common.languages import DEFAULT_SOURCE_LANGUAGES, parse_language_list
from common.security_settings import IpNetwork, SecuritySettings, parse_networks

LogFormat = Literal["text", "json"]
Device = Literal["auto", "cuda", "cpu"]


def default_instance_name() -> str:
    """A stable name for this process's host: consumer names and heartbeats use it."""
    return socket.gethostname()


class CommonSettings(SecuritySettings):
    """What every service reads: Redis, logging, the health/metrics server, identity, and the
    security settings (JWT, TLS, metrics token, limits, bind policy)."""

    # hide_input_in_errors: a validation error must never echo a secret it was given.
    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=False, extra="ignore", hide_input_in_errors=True
    )

    redis_url: SecretStr = Field(
        default=SecretStr("redis://localhost:6379"),
        description="Redis URL: redis://[user:password@]host:port/db, or rediss:// for TLS.",
    )
    session_ttl_seconds: int = Field(
        default=3600, ge=10,
        description="TTL of a session's keys in Redis (state, result log, result stream); "
        "every service that writes them uses it.",
    )
    redis_ca_file: Path | None = Field(default=None, description="CA bundle for rediss://.")
    redis_connect_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long a service retries Redis at start."
    )
    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL names one node of a Redis Cluster: use the cluster client, hash-tagged "
        "session keys and sharded job streams.",
    )
    stream_shards: int = Field(
        default=4, ge=1, le=1024,
        description="Cluster mode: shards of audio_jobs and transcriptions (audio_jobs:{0}...); "
        "ignored on one node, where the seed's single streams stay.",
    )
    host: str = Field(
        default="127.0.0.1", description="Address every listener of the service binds."
    )
    health_port: int = Field(default=8080, ge=0, le=65535, description="HTTP /health, /ready, /metrics.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_format: LogFormat = Field(default="text", description="text, or json (one object a line).")
    instance_name: str = Field(
        default_factory=default_instance_name,
        description="Stable name of this instance (consumer name, heartbeat, worker field).",
    )
    heartbeat_ttl_seconds: float = Field(default=15.0, gt=0, description="TTL of heartbeat keys.")
    otel_exporter_otlp_endpoint: str = Field(
        default="", description="OTLP/HTTP collector URL; empty: no traces. The other OTEL_* variables apply."
    )
    sentry_dsn: SecretStr | None = Field(default=None, description="Sentry DSN; unset: no error reports.")
    memory_debug: bool = Field(
        default=False, description="tracemalloc on, top growing allocation sites on /debug/memory (slow)."
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Graceful shutdown budget before in-flight work is abandoned."
    )
    # Read by the gateway and the model workers (common.memtrim); the transcript store ignores them.
    memory_trim_idle_seconds: float = Field(
        default=1.0, ge=0, description="Give the allocator's free heap back after this long idle; 0 = never."
    )
    memory_soft_limit_mb: int = Field(
        default=400, ge=0,
        description="Under load, give free heap back (at most every 10 s) while RSS is above this; 0 = never.",
    )
    # Read by the STT worker (detection answers only these) and the gateway (announced in
    # ready); here so one variable means the same to both.
    source_languages: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SOURCE_LANGUAGES,
        description="Comma-separated ISO 639-1 codes automatic language detection may answer; "
        "'all': any language the model knows. A session may narrow it (config.source_languages).",
    )

    @field_validator("source_languages", mode="before")
    @classmethod
    def _language_list(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, tuple) and value == DEFAULT_SOURCE_LANGUAGES:
            return value
        return parse_language_list(value if isinstance(value, str) else list(value))

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
        return level


class ConsumerSettings(CommonSettings):
    """What every reliable stream consumer shares (the workers and the transcript store)."""

    batch_timeout_ms: int = Field(
        default=5,
        ge=0,
        le=5000,
        description="How long to wait to fill a batch after the first job. Under load batches fill "
        "by themselves while the previous one runs; an idle worker should not wait.",
    )
    claim_idle_ms: int = Field(
        default=15000, ge=100, description="Pending entries idle longer than this are reclaimed."
    )
    max_deliveries: int = Field(
        default=3, ge=1, description="An entry delivered more often goes to dead_letters."
    )
    worker_index: int = Field(default=0, ge=0, description="Index in the consumer name host-N.")
    stream_shard_subset: str = Field(
        default="",
        description="Cluster mode: comma-separated shard numbers this worker reads (e.g. 0,2); "
        "empty: every shard.",
    )

    @field_validator("stream_shard_subset")
    @classmethod
    def _shard_list(cls, value: str) -> str:
        try:
            shards = [int(p) for p in value.replace(" ", "").split(",") if p]
        except ValueError:
            raise ValueError(f"STREAM_SHARD_SUBSET must be comma-separated integers, not {value!r}") from None
        if any(n < 0 for n in shards):
            raise ValueError("STREAM_SHARD_SUBSET: shard numbers start at 0")
        return ",".join(str(n) for n in shards)

    @model_validator(mode="after")
    def _subset_in_range(self) -> ConsumerSettings:
        too_big = [n for n in self.shard_subset() if n >= self.stream_shards]
        if self.redis_cluster and too_big:
            raise ValueError(f"STREAM_SHARD_SUBSET names shards {too_big}; STREAM_SHARDS is {self.stream_shards}")
        return self

    def shard_subset(self) -> tuple[int, ...]:
        """The shards this worker reads; empty means all of them."""
        return tuple(int(p) for p in self.stream_shard_subset.split(",") if p)


class WorkerSettings(ConsumerSettings):
    """What both model workers share: the device and batched inference."""

    device: Device = Field(default="auto", description="auto (CUDA when present), cuda or cpu.")
    max_batch_size: int = Field(default=8, ge=1, le=64, description="Jobs per batched inference.")


def default_data_dir() -> Path:
    """Where the embedded SQLite transcript database lives unless DATA_DIR says otherwise."""
    return Path.home() / ".local" / "share" / "speech-pipeline"


class DatabaseSettings(CommonSettings):
    """The transcript database: the store writes it, the gateway's REST routes read it."""

    database_url: SecretStr = Field(
        default=SecretStr(""),
        description="postgresql://user:password@host:port/db for PostgreSQL; empty: SQLite "
        "transcripts.db in DATA_DIR (sqlite:///path also accepted).",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir, description="Directory of the embedded SQLite database."
    )


class GatewaySettings(DatabaseSettings):
    """The WebSocket gateway."""

    gateway_port: int = Field(default=5026, ge=0, le=65535, description="WebSocket port.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="HTTP /health, /ready, /metrics.")
    sample_rate: int = Field(default=16000, ge=8000, le=48000, description="Default client sample rate.")
    silence_threshold_seconds: float = Field(
        default=2.0, gt=0, le=10, description="Silence that ends an utterance."
    )
    webrtc_sensitivity: int = Field(default=3, ge=0, le=3, description="WebRTC VAD mode 0-3.")
    silero_sensitivity: float = Field(
        default=0.7, ge=0, le=1, description="Silero speech probability threshold."
    )
    pre_speech_buffer_seconds: float = Field(
        default=1.0, ge=0, le=5, description="Audio kept before speech onset."
    )
    max_segment_seconds: float = Field(
        default=30.0, gt=1, le=30, description="Longest utterance before a cut."
    )
    min_speech_seconds: float = Field(
        default=0.25, ge=0, le=5, description="Shorter speech blips are ignored."
    )
    max_queue_depth: int = Field(
        default=100, ge=1, description="audio_jobs depth above which new utterances are refused."
    )
    stt_send_interval: float = Field(
        default=0.5, gt=0, description="Seconds between partial jobs of an open utterance."
    )
    max_frame_bytes: int = Field(
        default=262144, ge=1024, description="Largest WebSocket frame; larger closes with 1009."
    )
    max_sessions: int = Field(default=200, ge=1, description="Sessions per gateway; above: 1013.")
    # NoDecode: the variable is a comma-separated list, not JSON.
    trusted_proxies: Annotated[tuple[IpNetwork, ...], NoDecode] = Field(
        default=(),
        description="Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed.",
    )
    max_messages_per_second: float = Field(
        default=200.0, gt=0, description="Client message rate limit per connection."
    )
    idle_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A session with no client message this long is closed."
    )
    max_session_seconds: float = Field(
        default=14400.0, gt=0, description="Longest session before it is closed."
    )
    session_log_maxlen: int = Field(
        default=1000, ge=10, description="Results kept per session for replay after a reconnect."
    )
    result_wait_seconds: float = Field(
        default=15.0, gt=0, description="Longest wait for an earlier result before a later one goes."
    )
    send_queue_size: int = Field(
        default=256, ge=8, description="Messages queued per client before it is disconnected."
    )
    use_silero: bool = Field(default=True, description="Confirm speech with Silero VAD.")
    # Streaming commits (issue 14): finals inside a turn; they replace the early finals.
    streaming_commits: bool = Field(
        default=True, description="Commit finals inside a turn (false: one final per turn, as before)."
    )
    commit_pause_seconds: float = Field(
        default=0.5, gt=0, le=5, description="A pause this long inside a turn commits the speech before it."
    )
    pause_commit_text: Literal["hypothesis", "final"] = Field(
        default="hypothesis",
        description="Text of a pause commit: the partial hypothesis that heard the pause (no wait), or a final job.",
    )
    max_uncommitted_seconds: float = Field(
        default=8.0, ge=2, le=30, description="Uncommitted audio of a turn longer than this is cut and committed."
    )
    upload_max_bytes: int = Field(
        default=26_214_400, ge=1024, description="Largest file POST /v1/audio/* accepts (413 above)."
    )
    upload_max_seconds: float = Field(
        default=7200.0, gt=0, description="Longest audio POST /v1/audio/* accepts (413 above)."
    )
    upload_silence_seconds: float = Field(
        default=0.6, gt=0, le=10,
        description="Silence at which an uploaded file is cut into pieces for the STT workers.",
    )
    upload_jobs_per_worker: int = Field(
        default=2, ge=1,
        description="Pieces of one upload queued at once per live STT worker, so live sessions never "
        "wait behind a whole file.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return () if value is None else parse_networks(value)


class SttSettings(WorkerSettings):
    """The faster-whisper STT worker."""

    health_port: int = Field(default=8081, ge=0, le=65535, description="HTTP /health, /ready, /metrics.")
    model_size: str = Field(
        default="base", description="Whisper model: a directory, tiny.en, base, or a hub name."
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "speech-pipeline",
        description="Where shipped models are assembled and downloads go.",
    )
    compute_type: str = Field(default="auto", description="auto: float16 on CUDA, int8 on CPU.")
    cpu_threads: int = Field(default=0, ge=0, description="CTranslate2 threads; 0 = its default.")
    beam_size: int = Field(default=5, ge=1, le=16, description="Beam size for finals.")
    vad_filter: bool = Field(default=True, description="faster-whisper's own VAD filter on finals.")
    normalize_audio: bool = Field(default=False, description="Peak-normalise audio before inference.")
    partial_max_age: float = Field(
        default=2.0, gt=0, description="Partial jobs older than this are skipped."
    )
    stt_batched: bool = Field(
        default=True, description="Run a batch of jobs as one encode and one generate call."
    )
    encoder_window: Literal["dynamic", "full"] = Field(
        default="dynamic",
        description="dynamic: encode each batch's audio plus 2 s, at least 15 s; full: Whisper's fixed 30 s window.",
    )


class TranslationSettings(WorkerSettings):
    """The CTranslate2 translation worker."""

    health_port: int = Field(default=8082, ge=0, le=65535, description="HTTP /health, /ready, /metrics.")
    translation_engine: Literal["ctranslate2", "easynmt"] = Field(
        default="ctranslate2", description="ctranslate2 (NLLB-200 / opus-mt) or easynmt (extra)."
    )
    translation_model: str = Field(
        default="",
        description="A CTranslate2 model directory or hub id; empty: translation is unavailable.",
    )
    easynmt_model: str = Field(default="opus-mt", description="Model name for the easynmt engine.")
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "speech-pipeline",
        description="Where downloaded translation models go.",
    )
    compute_type: str = Field(default="auto", description="auto: float16 on CUDA, int8 on CPU.")
    cpu_threads: int = Field(default=0, ge=0, description="CTranslate2 threads; 0 = its default.")
    translation_idle_unload_seconds: float = Field(
        default=300.0, gt=0, description="Unload the model after this long unused."
    )
    translation_max_loaded_pairs: int = Field(
        default=4, ge=1, description="opus-mt pair models kept loaded (LRU)."
    )


class StoreSettings(ConsumerSettings, DatabaseSettings):
    """The transcript store: consumes ``transcripts`` into the database."""

    health_port: int = Field(default=8083, ge=0, le=65535, description="HTTP /health, /ready, /metrics.")
    store_batch_size: int = Field(
        default=200, ge=1, le=5000, description="Entries written to the database in one transaction."
    )
    transcript_retention_days: float = Field(
        default=0, ge=0, description="Sessions idle longer than this many days are deleted; 0 keeps them."
    )
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the store applies TRANSCRIPT_RETENTION_DAYS."
    )
