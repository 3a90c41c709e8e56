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

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from common.languages import DEFAULT_SOURCE_LANGUAGES, parse_language_list
from common.security_settings import SecuritySettings

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
    redis_ca_file: Path | None = Field(default=None, description="CA bundle for rediss://.")
    redis_connect_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long a service retries Redis at start."
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
    shutdown_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Graceful shutdown budget before in-flight work is abandoned."
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


class WorkerSettings(CommonSettings):
    """What both stream-consuming workers share: batching and reliable consumption."""

    device: Device = Field(default="auto", description="auto (CUDA when present), cuda or cpu.")
    max_batch_size: int = Field(default=8, ge=1, le=64, description="Jobs per batched inference.")
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


class GatewaySettings(CommonSettings):
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
    max_messages_per_second: float = Field(
        default=200.0, gt=0, description="Client message rate limit per connection."
    )
    idle_timeout_seconds: float = Field(
        default=60.0, gt=0, description="A session with no client message this long is closed."
    )
    max_session_seconds: float = Field(
        default=14400.0, gt=0, description="Longest session before it is closed."
    )
    session_ttl_seconds: int = Field(
        default=3600, ge=10, description="TTL of session state and its result log in Redis."
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
    early_final_seconds: float = Field(
        default=0.5,
        ge=0,
        description="Silence after which an early (speculative) final job is sent, so the final is "
        "ready when SILENCE_THRESHOLD_SECONDS elapses; 0 turns it off.",
    )


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
        description="dynamic: encode each batch's audio plus 2 s; full: Whisper's fixed 30 s window.",
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
