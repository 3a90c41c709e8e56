"""Logging set-up: one line a record, text or JSON (``LOG_FORMAT=json``), secrets redacted.

Services register every secret value they hold (Redis password, JWT secret, tokens) with
:func:`register_secret`; a filter on the root handler replaces them in every formatted
record, exception text included, so a secret cannot reach a log line by accident.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log every request at INFO would drown the service's own lines.
    for noisy in ("aiohttp.access", "websockets", "faster_whisper"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
