"""Error reports to Sentry (``SENTRY_DSN``), redacted exactly like the logs.

Every event goes through :func:`scrub_event` before it leaves the process: each string in it
(exception messages, stack-frame variables, breadcrumbs, log messages, extra data) passes
:func:`common.logs.redact`, which removes every registered secret (Redis password, JWT
secret, metrics token) and anything token-shaped. Local variables are not sent at all, nor
PII (sentry-sdk's default). ERROR log records become events; lower ones
breadcrumbs (sentry-sdk's logging integration).
"""

from __future__ import annotations

import logging
from typing import Any

from common.logs import redact

log = logging.getLogger(__name__)


def scrub(value: Any) -> Any:
    """``value`` with every string in it redacted (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v) for v in value)
    return value


def scrub_event(event: Any, hint: Any = None) -> Any:
    """sentry-sdk's ``before_send`` / ``before_breadcrumb``: the redacted event (a dict)."""
    return scrub(event)


def setup_error_reports(dsn: str, *, service: str, transport: Any = None, release: str | None = None) -> None:
    """Send errors of this process to Sentry; ``transport`` is for tests (no network)."""
    import sentry_sdk

    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=dsn,
        server_name=service,
        release=release,
        include_local_variables=False,  # frames' locals could hold audio, tokens, anything
        before_send=scrub_event,
        before_breadcrumb=scrub_event,
        default_integrations=True,  # logging, excepthook, threading, ...
        auto_enabling_integrations=False,  # would import every instrumentable library installed
        **options,
    )
    sentry_sdk.set_tag("service", service)
    log.info("error reports on (Sentry)")
