"""The bus contract: names in one place, versioned schemas, strict decoding."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from common import bus


def _job(**over: object) -> bus.AudioJob:
    fields: dict[str, object] = dict(
        kind="final", session_id="s1", utterance_index=3, segment_id="s1:3", start=1.0, end=2.5,
        created_at=time.time(),
    )
    fields.update(over)
    return bus.AudioJob(**fields)  # type: ignore[arg-type]


def test_names_are_the_seeds() -> None:
    assert bus.AUDIO_JOBS == "audio_jobs"
    assert bus.TRANSCRIPTIONS == "transcriptions"
    assert (bus.STT_GROUP, bus.TRANSLATION_GROUP) == ("stt_workers", "translation_workers")
    assert bus.session_key("abc") == "session:abc"
    assert bus.session_log_key("abc") == "session_log:abc"
    assert bus.heartbeat_key("stt_worker", "h-0") == "heartbeat:stt_worker:h-0"
    assert bus.DEAD_LETTERS == "dead_letters"


def test_audio_job_round_trip() -> None:
    pcm = (np.sin(np.linspace(0, 100, 16000)) * 10000).astype(np.int16)
    fields = bus.encode_audio_job(_job(), pcm)
    job, audio = bus.decode_audio_job(fields)
    assert job.v == bus.SCHEMA_VERSION
    assert job.segment_id == "s1:3"
    assert np.array_equal(audio, pcm)
    # Redis hands back bytes keys: decoding accepts them too.
    job2, _ = bus.decode_audio_job({k.encode(): v for k, v in fields.items()})
    assert job2 == job


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({}, "no 'meta' field"),
        ({"meta": b"not json", "audio": b""}, "metadata invalid"),
        ({"meta": json.dumps({"v": 2}).encode(), "audio": b""}, "v"),
        ({"meta": _job().model_dump_json().encode()}, "no 'audio' field"),
        ({"meta": _job().model_dump_json().encode(), "audio": b"\x00"}, "16-bit"),
        ({"meta": _job().model_dump_json().replace('"final"', '"shout"').encode(), "audio": b""}, "kind"),
    ],
)
def test_malformed_audio_jobs_are_rejected_clearly(fields: dict[str, bytes], needle: str) -> None:
    with pytest.raises(bus.MalformedMessage) as info:
        bus.decode_audio_job(fields)
    assert needle in str(info.value)


def test_results_decode_by_type() -> None:
    final = bus.FinalResult(session_id="s", segment_id="s:0", utterance_index=0, text="hi", start=0, end=1)
    decoded = bus.decode_result(bus.encode_result(final))
    assert isinstance(decoded, bus.FinalResult) and decoded.text == "hi"
    with pytest.raises(bus.MalformedMessage):
        bus.decode_result('{"type":"final"}')
    with pytest.raises(bus.MalformedMessage):
        bus.decode_result('{"type":"mystery","session_id":"s"}')


def test_encode_refuses_wrong_audio_dtype() -> None:
    with pytest.raises(ValueError):
        bus.encode_audio_job(_job(), np.zeros(10, dtype=np.float32))


def test_dead_letter_fields_carry_no_session_id() -> None:
    job = bus.AudioJob(kind="final", session_id="secret-session", utterance_index=3,
                       segment_id="secret-session:3", start=0, end=1, created_at=0)
    fields = bus.encode_audio_job(job, np.zeros(4, dtype=np.int16))
    cleaned = bus.without_session_ids(fields)
    assert b"secret-session" not in cleaned["meta"] and cleaned["audio"] == fields["audio"]
    meta = json.loads(cleaned["meta"])
    assert meta["session_id"] == bus.session_digest("secret-session")
    assert meta["segment_id"] == bus.session_digest("secret-session") + ":3"
    broken = bus.without_session_ids({b"meta": b'{"session_id": "secret-session", "x": '})
    assert b"secret-session" not in broken[b"meta"]
