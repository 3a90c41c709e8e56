"""Logging set-up: one line a record, text or JSON (``LOG_FORMAT=json``), secrets redacted.

Services register every secret value they hold (Redis password, JWT secret, tokens) with
:func:`register_secret`; a filter on the root handler replaces them in every formatted
record, exception text included, so a secret cannot reach a log line by accident.

Every record also carries ``session_id``, ``segment_id`` and ``trace_id`` when they are known
(context variables: :func:`bind` for a connection's whole life, :func:`log_context` around
one job; ``trace_id`` also from the active OpenTelemetry span), so a central log store
(Loki, Elasticsearch) can join a session's lines across services, and with its trace.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "***"

# What a token looks like wherever it may appear in a log line: a JWT (its header always
# base64-encodes '{"', hence "eyJ"), a bearer credential, a ?token= query, a JSON "token".
_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"), r"\1***"),
    (re.compile(r"(?i)([?&]token=)[^&\s\"'#]+"), r"\1***"),
    (re.compile(r"(?i)(\"token\"\s*:\s*\")[^\"]*"), r"\1***"),
    (re.compile(r"(?i)('token'\s*:\s*')[^']*"), r"\1***"),
)


def redact_tokens(text: str) -> str:
    """``text`` with anything token-shaped replaced by ``***`` (for the log formatter).

    Tokens differ per client, so unlike fixed secrets they cannot be registered one by one;
    libraries (websockets at DEBUG) print request lines, headers and frames that hold them.
    """
    lowered = text.lower()
    if "eyj" not in lowered and "token" not in lowered and "bearer" not in lowered:
        return text  # the common case: a cheap scan, no regex
    for pattern, replacement in _TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return text



CONTEXT_FIELDS = ("session_id", "segment_id", "trace_id")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"log_{name}", default=None) for name in CONTEXT_FIELDS
}


def _trace_id(traceparent: str | None) -> str | None:
    parts = traceparent.split("-") if traceparent else []
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def bind(*, session_id: str | None = None, segment_id: str | None = None, traceparent: str | None = None) -> None:
    """Set the fields for the rest of this task (and the tasks it starts)."""
    values = {"session_id": session_id, "segment_id": segment_id, "trace_id": _trace_id(traceparent)}
    for name, value in values.items():
        if value is not None:
            _context[name].set(value)


@contextmanager
def log_context(*, session_id: str | None = None, segment_id: str | None = None,
                traceparent: str | None = None) -> Iterator[None]:
    """The fields for the records logged inside the block (one job's handling)."""
    values = {"session_id": session_id, "segment_id": segment_id, "trace_id": _trace_id(traceparent)}
    tokens = [(_context[name], _context[name].set(value)) for name, value in values.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts the known context fields on each record (never overwriting an explicit ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            value = var.get()
            if name == "trace_id" and value is None:
                value = _active_trace_id()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


def _active_trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # tracing is optional for the log set-up
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def register_secret(value: str | None) -> None:
    """Never print ``value``: it is replaced by ``***`` in every log line."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_tokens(text)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, exception, extras."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | str | bool | None) else str(value)
        return redact(json.dumps(payload, ensure_ascii=False))


def setup_logging(level: str = "INFO", fmt: str = "text", service: str = "") -> None:
    """Configure the root logger once for a service process."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        prefix = f"{service} " if service else ""
        handler.setFormatter(
            _RedactingFormatter(f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s")
        )
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log every request at INFO would drown the service's own lines.
    for noisy in ("aiohttp.access", "websockets", "faster_whisper"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
