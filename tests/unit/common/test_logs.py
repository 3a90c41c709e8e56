"""Logging: JSON lines on request, and registered secrets never reach a line."""

from __future__ import annotations

import json
import logging

import pytest

from common.logs import JsonFormatter, redact, register_secret, setup_logging


def test_registered_secret_is_redacted_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret("s3cr3t-value-xyz")
    setup_logging("INFO", "text", "t")
    log = logging.getLogger("test.redact")
    log.info("connecting with %s", "redis://:s3cr3t-value-xyz@host")
    try:
        raise RuntimeError("bad password s3cr3t-value-xyz")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "s3cr3t-value-xyz" not in err
    assert "***" in err and "Traceback" in err
    assert redact("x s3cr3t-value-xyz y") == "x *** y"


def test_json_format_is_one_object_a_line() -> None:
    record = logging.LogRecord("svc", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.session = "abc"
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "hello world"
    assert data["level"] == "WARNING"
    assert data["session"] == "abc"
    assert "\n" not in line
