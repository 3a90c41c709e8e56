"""Sentry events are redacted like the logs: registered secrets and token-shaped strings never
leave the process. A local transport captures the envelopes sentry-sdk would send."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from common.errors import setup_error_reports
from common.logs import register_secret

SECRET = "redis-pass-5f3a9c"  # a test value
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


class CapturingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    def payloads(self) -> list[str]:
        return [item.payload.get_bytes().decode() for env in self.envelopes for item in env.items]


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    register_secret(SECRET)
    captured = CapturingTransport()
    setup_error_reports("http://public@127.0.0.1:9/1", service="test", transport=captured)
    try:
        yield captured
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(auto_enabling_integrations=False)  # a disabled client for the tests that follow


def test_exceptions_are_reported_without_secrets_or_tokens(transport: CapturingTransport) -> None:
    try:
        raise ConnectionError(f"redis://:{SECRET}@redis:6379 refused; Authorization: Bearer {JWT}")
    except ConnectionError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(5)
    [payload] = [p for p in transport.payloads() if "ConnectionError" in p]
    assert SECRET not in payload and JWT not in payload
    assert "***" in payload
    event = json.loads(payload)
    assert event["exception"]["values"][0]["type"] == "ConnectionError"


def test_error_log_lines_and_breadcrumbs_are_redacted(transport: CapturingTransport) -> None:
    logger = logging.getLogger("test.errors")
    logger.info("connecting with token %s", JWT)  # becomes a breadcrumb
    logger.error("worker failed, password %s", SECRET)  # becomes an event
    sentry_sdk.flush(5)
    payloads = transport.payloads()
    assert any("worker failed" in p for p in payloads)
    for payload in payloads:
        assert SECRET not in payload and JWT not in payload
