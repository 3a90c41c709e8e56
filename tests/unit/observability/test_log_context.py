"""JSON log lines carry session_id, segment_id and trace_id when they are known, per task."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from common import bus, logs
from common.consumer import _ids_of

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("test.context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_jobs_lines_carry_its_ids_and_trace_only_inside_the_block(lines: io.StringIO) -> None:
    log = logging.getLogger("test.context")
    with logs.log_context(session_id="s1", segment_id="s1:3", traceparent=TRACEPARENT):
        log.info("inside")
    log.info("after")
    inside, after = records(lines)
    assert (inside["session_id"], inside["segment_id"], inside["trace_id"]) == (
        "s1", "s1:3", "4bf92f3577b34da6a3ce929d0e0e4736")
    assert not {"session_id", "segment_id", "trace_id"} & set(after)


async def test_each_connection_task_keeps_its_own_session_id(lines: io.StringIO) -> None:
    log = logging.getLogger("test.context")

    async def connection(session_id: str) -> None:
        logs.bind(session_id=session_id)
        await asyncio.sleep(0)
        log.info("working")
        await asyncio.sleep(0)

        async def child() -> None:  # a task the connection starts inherits the binding
            log.info("child")

        await asyncio.create_task(child())

    await asyncio.gather(asyncio.create_task(connection("a")), asyncio.create_task(connection("b")))
    got = sorted((r["message"], r["session_id"]) for r in records(lines))
    assert got == [("child", "a"), ("child", "b"), ("working", "a"), ("working", "b")]


def test_trace_id_comes_from_the_active_span(lines: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("test.context").info("traced")
    [record] = records(lines)
    assert record["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_an_explicit_extra_wins(lines: io.StringIO) -> None:
    with logs.log_context(session_id="context"):
        logging.getLogger("test.context").info("explicit", extra={"session_id": "given"})
    assert records(lines)[0]["session_id"] == "given"


def test_ids_of_a_decoded_job() -> None:
    job = bus.TranscriptionJob(session_id="s", segment_id="s:0", utterance_index=0, text="hi",
                               source_language="en", target_language="es", created_at=0.0, traceparent=TRACEPARENT)
    assert _ids_of(job) == {"session_id": "s", "segment_id": "s:0", "traceparent": TRACEPARENT}
    assert _ids_of((job, b"pcm")) == _ids_of(job)
    assert _ids_of(object()) == {}
