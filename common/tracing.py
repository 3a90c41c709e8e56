"""OpenTelemetry traces of an utterance's path: gateway -> audio_jobs -> STT -> transcriptions
-> translation -> delivery, one trace per final utterance.

The trace context rides in the bus messages (``traceparent``, W3C Trace Context, in every
schema of :mod:`common.bus`), so no service needs to know the others' tracers. Spans:

- ``gateway.utterance``: the gateway cut an utterance and queued its final job (root);
- ``bus.audio_jobs``: the job waiting in ``audio_jobs`` until a worker's batch took it;
- ``stt.transcribe``: the batched inference it was part of;
- ``translation.translate``: its translation (when a target language is set);
- ``gateway.deliver``: the gateway received the final or translation for the client.

Off by default: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` unset nothing is installed and the
OpenTelemetry API's no-op tracer makes every call here nearly free (no ``traceparent`` is
written). When set, an OTLP/HTTP exporter is configured by the standard ``OTEL_*`` variables
(endpoint, headers, timeout, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), read by the
SDK itself. Tests install their own provider with :func:`install_provider`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "speech-pipeline"
M = TypeVar("M")

_KINDS = {"internal": SpanKind.INTERNAL, "consumer": SpanKind.CONSUMER, "producer": SpanKind.PRODUCER}
Attributes = Mapping[str, str | int | float | bool]


def setup_tracing(service: str, endpoint: str | None) -> bool:
    """Install an OTLP exporter for ``service`` when an endpoint is configured; True if on."""
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the service's own name.
    resource = Resource.create({"service.name": service}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint etc. from OTEL_*
    install_provider(provider)
    log.info("tracing on: OTLP spans to %s", endpoint)
    return True


def install_provider(provider: Any) -> None:
    """Make ``provider`` the one this process traces with (services at start; tests)."""
    trace.set_tracer_provider(provider)


def _tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


def enabled() -> bool:
    """Whether a real tracer provider is installed (ours, a test's, or auto-instrumentation's).
    Without one, a root span would be a no-op anyway: skipping it keeps a final job's path
    free of span objects (about 40 us per job here)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def traceparent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span``; None for a no-op span (tracing off)."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _parent(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits (for log lines), None outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _ns(seconds: float | None) -> int | None:
    return int(seconds * 1e9) if seconds else None


def start_utterance(message: M, attributes: Attributes | None = None) -> M:
    """Root span of an utterance, ended at once (it covers the cut and the XADD); returns the
    job with its ``traceparent`` (unchanged when tracing is off)."""
    if not enabled():
        return message
    span = _tracer().start_span("gateway.utterance", kind=SpanKind.PRODUCER, attributes=attributes)
    try:
        return _with_traceparent(message, traceparent_of(span))
    finally:
        span.end()


def record_span(name: str, traceparent: str | None, *, start: float | None = None, end: float | None = None,
                attributes: Attributes | None = None, kind: str = "internal") -> str | None:
    """A finished span under ``traceparent`` (wall-clock ``start``/``end`` in seconds, for work
    done before the span could be made, e.g. one batched inference for many jobs); returns
    its own ``traceparent`` for the next hop. Nothing without a parent: only utterances the
    gateway traced are followed."""
    parent = _parent(traceparent)
    if parent is None:
        return None
    span = _tracer().start_span(name, context=parent, kind=_KINDS[kind], attributes=attributes,
                                start_time=_ns(start))
    span.end(end_time=_ns(end) or time.time_ns())
    return traceparent_of(span)


@contextmanager
def span_under(name: str, traceparent: str | None, attributes: Attributes | None = None) -> Iterator[Span | None]:
    """The current span while the block runs, under ``traceparent``; None without one."""
    parent = _parent(traceparent)
    if parent is None:
        yield None
        return
    with _tracer().start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


def _with_traceparent(message: M, traceparent: str | None) -> M:
    if traceparent is None:
        return message
    copy = getattr(message, "model_copy", None)
    return copy(update={"traceparent": traceparent}) if copy is not None else message
