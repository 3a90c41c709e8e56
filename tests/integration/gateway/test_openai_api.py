"""The OpenAI-compatible audio API driven by the official ``openai`` package, on a real gateway,
a real Redis and a real STT worker (tiny.en): every response format, containers other than
WAV, streaming, and the errors as the SDK's own exception types."""

from __future__ import annotations

import io
import itertools
import json
import wave
from pathlib import Path
from typing import Any

import av
import jiwer
import jwt
import numpy as np
import openai
import pytest

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "stt"
CLIPS = ("en_weather", "en_meeting", "en_train", "en_coffee")
REFERENCES = json.loads((FIXTURES / "references.json").read_text())
REFERENCE = " ".join(REFERENCES[c]["text"] for c in CLIPS)
#: tiny.en on the four sentences (every WER below goes through record_margin).
MAX_WER = 0.25


def norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


def wer(text: str) -> float:
    return float(jiwer.wer(norm(REFERENCE), norm(text)))


def pcm_of(name: str) -> np.ndarray:
    with wave.open(str(FIXTURES / f"{name}.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def four_sentences() -> np.ndarray:
    """The four English fixtures one after the other with a second of silence between them."""
    gap = np.zeros(16000, dtype=np.int16)
    parts: list[np.ndarray] = [gap[:8000]]
    for name in CLIPS:
        parts += [pcm_of(name), gap]
    return np.concatenate(parts)


def as_wav(pcm: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def encode(pcm: np.ndarray, container: str, codec: str, rate: int) -> bytes:
    """``pcm`` (16 kHz) in another container and codec, at another rate, by FFmpeg (PyAV)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture
async def api(make_gateway: Any, stt_worker: Any) -> Any:
    gw = await make_gateway()
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="unused", max_retries=0)


@pytest.mark.model_output
async def test_json_text_srt_vtt_and_verbose_json(api: openai.AsyncOpenAI, record_margin: Any) -> None:
    wav = as_wav(four_sentences())
    plain = await api.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav))
    record_margin("json WER", wer(plain.text), MAX_WER)

    text = await api.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav), response_format="text")
    assert isinstance(text, str)
    record_margin("text WER", wer(text), MAX_WER)

    srt = await api.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav), response_format="srt")
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert len(blocks) >= 3  # one cue per sentence (the VAD cuts at the 1 s pauses)
    assert blocks[0].splitlines()[0] == "1" and " --> " in blocks[0].splitlines()[1]
    record_margin("srt WER", wer(" ".join(" ".join(b.splitlines()[2:]) for b in blocks)), MAX_WER)

    vtt = await api.audio.transcriptions.create(model="whisper-1", file=("talk.wav", wav), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n") and "00:00:00." in vtt

    verbose = await api.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav), response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "en" and verbose.duration == pytest.approx(len(four_sentences()) / 16000, abs=0.05)
    segments = verbose.segments or []
    assert len(segments) >= 3
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and all(s.end > s.start for s in segments)
    words = verbose.words or []
    assert len(words) >= 30
    # Word times are on the file's clock: speech begins 0.56 s into the file (Whisper's word
    # times are good to a few tenths of a second).
    record_margin("|first word start - 0.56 s|", abs(words[0].start - 0.56), 0.45)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))


@pytest.mark.parametrize(("container", "codec", "rate"), [
    ("flac", "flac", 16000), ("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("ipod", "aac", 22050),
])
@pytest.mark.model_output
async def test_other_containers(
    api: openai.AsyncOpenAI, container: str, codec: str, rate: int, record_margin: Any
) -> None:
    data = encode(four_sentences(), container, codec, rate)
    name = {"ipod": "talk.m4a", "ogg": "talk.ogg"}.get(container, f"talk.{container}")
    result = await api.audio.transcriptions.create(model="whisper-1", file=(name, data))
    record_margin(f"{container} WER", wer(result.text), MAX_WER)


@pytest.mark.model_output
async def test_translation_into_english(api: openai.AsyncOpenAI, record_margin: Any) -> None:
    # tiny.en knows only English: translating English gives English, through the translate task.
    result = await api.audio.translations.create(model="whisper-1", file=("talk.wav", as_wav(four_sentences())))
    record_margin("translate WER", wer(result.text), MAX_WER)


@pytest.mark.model_output
async def test_streaming_gives_a_delta_per_segment_then_the_text(api: openai.AsyncOpenAI, record_margin: Any) -> None:
    stream = await api.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", as_wav(four_sentences())), stream=True,
    )
    events = [event async for event in stream]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 3 and len(done) == 1
    assert "".join(d.delta for d in deltas) == done[0].text
    record_margin("streamed WER", wer(done[0].text), MAX_WER)


async def test_errors_are_openai_errors(api: openai.AsyncOpenAI, make_gateway: Any) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await api.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"this is not audio" * 100))
    assert bad.value.status_code == 400
    assert bad.value.body["code"] == "invalid_file"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await api.audio.transcriptions.create(model="whisper-1", file=("t.wav", as_wav(four_sentences())),
                                              response_format="docx")  # type: ignore[arg-type]

    small = await make_gateway(upload_max_bytes=10_000)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{small.port}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as large:
        await client.audio.transcriptions.create(model="whisper-1", file=("t.wav", as_wav(four_sentences())))
    assert large.value.status_code == 413

    short = await make_gateway(upload_max_seconds=3.0)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{short.port}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as long:
        await client.audio.transcriptions.create(model="whisper-1", file=("t.wav", as_wav(four_sentences())))
    assert long.value.status_code == 413 and long.value.body["code"] == "audio_too_long"  # type: ignore[index]


SECRET = "openai-api-test-" + "s" * 30


def token(sub: str) -> str:
    import time

    now = time.time()
    return jwt.encode({"sub": sub, "exp": int(now + 600), "iat": int(now)}, SECRET, algorithm="HS256")


async def test_auth_rate_and_quota(make_gateway: Any, stt_worker: Any) -> None:
    gw = await make_gateway(jwt_secret=SECRET, audio_seconds_per_subject_per_minute=10.0,
                            http_requests_per_ip_per_minute=8)
    base = f"http://127.0.0.1:{gw.port}/v1"
    two = as_wav(np.concatenate([np.zeros(8000, np.int16), pcm_of("en_weather"), np.zeros(16000, np.int16),
                                 pcm_of("en_meeting"), np.zeros(16000, np.int16)]))  # about 8 s
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(base_url=base, api_key="not-a-token", max_retries=0).audio.transcriptions.create(
            model="whisper-1", file=("t.wav", two))
    alice = openai.AsyncOpenAI(base_url=base, api_key=token("alice"), max_retries=0)
    first = await alice.audio.transcriptions.create(model="whisper-1", file=("t.wav", two))
    assert "weather" in first.text.lower() and "report" in first.text.lower()
    with pytest.raises(openai.RateLimitError) as quota:  # about 8 s used of 10 s this minute
        await alice.audio.transcriptions.create(model="whisper-1", file=("t.wav", two))
    assert quota.value.body["code"] == "audio_quota_exceeded"  # type: ignore[index]
    statuses = []
    for _ in range(6):  # past the per-IP request rate (3 requests so far)
        try:
            await alice.audio.transcriptions.create(model="whisper-1", file=("t.wav", b"not audio"))
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses[:5] == [400] * 5 and statuses[5] == 429
