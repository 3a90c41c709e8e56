"""Tracing is off by default: no provider, no traceparent in any bus message, no spans."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_without_an_endpoint_nothing_is_traced() -> None:
    # A fresh interpreter: OpenTelemetry's global provider can be set once per process, and
    # the integration tests set one.
    code = textwrap.dedent(
        """
        from common import bus, tracing
        assert tracing.setup_tracing("gateway", "") is False
        job = bus.TranscriptionJob(session_id="s", segment_id="s:0", utterance_index=0, text="hi",
                                   source_language="en", target_language="es", created_at=0.0)
        assert tracing.start_utterance(job) is job and job.traceparent is None
        assert tracing.record_span("stt.transcribe", None) is None
        assert tracing.current_trace_id() is None
        assert '"traceparent":null' in job.model_dump_json()
        print("off")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "off", out.stderr


def test_an_endpoint_installs_an_otlp_exporter() -> None:
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from common import tracing
        assert tracing.setup_tracing("stt_worker", "http://127.0.0.1:9/") is True
        provider = trace.get_tracer_provider()
        print(type(provider).__name__, provider.resource.attributes["service.name"])
        """
    )
    env_code = ["env", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9/", "OTEL_BSP_SCHEDULE_DELAY=60000"]
    out = subprocess.run([*env_code, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.split() == ["TracerProvider", "stt_worker"], out.stderr
