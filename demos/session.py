"""One demo client session: stream a clip over protocol v1 and record what comes back.

A thin async shell around :class:`demos.metrics.SessionRecord`: it only moves bytes and
stamps times; all interpretation happens in :mod:`demos.metrics`. The protocol (messages,
the socket, dropping replays) is :mod:`speech_client`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from demos.metrics import Received, SessionRecord
from speech_client.client import SpeechClient
from speech_client.protocol import Config, Done, End, Ready

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    url: str = "ws://127.0.0.1:5026"
    token: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    partials: bool = True
    speed: float = 1.0
    chunk_ms: int = 30
    connect_timeout: float = 10.0
    ready_timeout: float = 10.0
    done_timeout: float = 120.0
    silence_threshold: float = 2.0

    def __repr__(self) -> str:
        # The token must never reach a log line or a report.
        return f"SessionOptions(url={self.url!r}, speed={self.speed}, chunk_ms={self.chunk_ms})"


async def wait_for_gateway(url: str, timeout: float, interval: float = 0.5) -> bool:
    """Poll until the gateway's TCP port accepts connections (for scripts that start the
    stack in the background and run the demo right away). True when it does in time."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), interval)
        except (OSError, asyncio.TimeoutError):  # distinct from TimeoutError before 3.11
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


def config_message(options: SessionOptions, sample_rate: int) -> Config:
    """The ``config`` frame; languages are sent only when chosen, else server defaults apply."""
    fields: dict[str, object] = {"sample_rate": sample_rate, "partials": options.partials}
    if options.source_language:
        fields["source_language"] = options.source_language
    if options.target_language:
        fields["target_language"] = options.target_language
    return Config.model_validate(fields)


def _chunks(pcm: bytes, sample_rate: int, chunk_ms: int) -> list[tuple[bytes, float]]:
    """Split int16 PCM into (chunk, clip time at the chunk's end) pairs."""
    step = max(1, sample_rate * chunk_ms // 1000) * 2
    return [
        (pcm[offset : offset + step], min(offset + step, len(pcm)) / 2 / sample_rate)
        for offset in range(0, len(pcm), step)
    ]


OnMessage = Callable[[SessionRecord, Received], None]


async def _receive(client: SpeechClient, record: SessionRecord, ready: asyncio.Event,
                   done: asyncio.Event, on_message: OnMessage | None) -> None:
    try:
        async for message in client.messages():
            received = Received(time.perf_counter(), message.to_dict())
            record.received.append(received)
            if on_message is not None:
                on_message(record, received)
            if isinstance(message, Ready):
                if message.silence_threshold_seconds:
                    record.silence_threshold = message.silence_threshold_seconds
                ready.set()
            elif isinstance(message, Done):
                done.set()
    finally:
        # Frames that were not protocol v1 messages (the client skipped them).
        record.client_errors.extend(["invalid_json"] * client.bad_frames)
        client.bad_frames = 0
    code = client.close_code
    if not done.is_set() and code not in (1000, 1001):
        record.client_errors.append(f"closed_{code or 1006}")


async def _stream(client: SpeechClient, record: SessionRecord, pcm: bytes, sample_rate: int,
                  options: SessionOptions, progress: Callable[[float], None] | None) -> None:
    """Send the clip paced like a microphone: a chunk once its audio 'has been recorded'."""
    start = time.perf_counter()
    sent_audio = 0.0
    for chunk, audio_end in _chunks(pcm, sample_rate, options.chunk_ms):
        delay = start + audio_end / options.speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await client.send_audio(chunk)
        record.clock.record(audio_end, time.perf_counter())
        if progress is not None:
            progress(audio_end - sent_audio)
        sent_audio = audio_end


async def run_session(
    record: SessionRecord,
    pcm: bytes,
    sample_rate: int,
    options: SessionOptions,
    progress: Callable[[float], None] | None = None,
    on_message: OnMessage | None = None,
) -> SessionRecord:
    """Connect, configure, stream, send ``end`` and wait for ``done``; fill ``record``."""
    record.silence_threshold = options.silence_threshold
    record.started_at = time.perf_counter()
    try:
        # No proxy (the stack is local or named explicitly) and no per-message deflate
        # (PCM barely compresses and the CPU is shared with the pipeline).
        client = await SpeechClient.connect(
            options.url, token=options.token, open_timeout=options.connect_timeout,
            proxy=None, compression=None,
        )
        async with client:
            await _converse(client, record, pcm, sample_rate, options, progress, on_message)
    except InvalidStatus as exc:
        record.client_errors.append(f"http_{exc.response.status_code}")
    except (OSError, asyncio.TimeoutError, TimeoutError, InvalidHandshake) as exc:
        log.warning("session %d: cannot connect to %s: %s", record.index, options.url,
                    type(exc).__name__)
        record.client_errors.append("connect_failed")
    record.finished_at = time.perf_counter()
    return record


async def _until(event: asyncio.Event, receiver: asyncio.Task[None], timeout: float) -> bool:
    """Wait for ``event`` unless the receiver ends (socket closed) or time runs out."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({waiter, receiver}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return event.is_set()


async def _converse(client: SpeechClient, record: SessionRecord, pcm: bytes, sample_rate: int,
                    options: SessionOptions, progress: Callable[[float], None] | None,
                    on_message: OnMessage | None) -> None:
    ready, done = asyncio.Event(), asyncio.Event()
    receiver = asyncio.create_task(_receive(client, record, ready, done, on_message))
    try:
        await _talk(client, record, pcm, sample_rate, options, progress, ready, done, receiver)
    except ConnectionClosed as exc:
        # A send found the socket closed (auth refused, server gone): let the receiver
        # drain what arrived, then make sure the close is on record.
        await asyncio.wait({receiver}, timeout=1.0)
        if not record.client_errors and not done.is_set():
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            record.client_errors.append(f"closed_{code}")
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver


async def _talk(client: SpeechClient, record: SessionRecord, pcm: bytes, sample_rate: int,
                options: SessionOptions, progress: Callable[[float], None] | None,
                ready: asyncio.Event, done: asyncio.Event, receiver: asyncio.Task[None]) -> None:
    """config -> wait for ready -> stream -> end -> wait for done."""
    await client.send(config_message(options, sample_rate))
    if not await _until(ready, receiver, options.ready_timeout):
        if receiver.done():
            # Closed before `ready` (e.g. auth refused with 1008): the receiver
            # recorded the close code unless the close was a clean 1000.
            if not record.client_errors:
                record.client_errors.append("closed_before_ready")
        else:
            record.client_errors.append("ready_timeout")
        return
    await _stream(client, record, pcm, sample_rate, options, progress)
    await client.send(End())
    record.clock.end_sent_at = time.perf_counter()
    if await _until(done, receiver, options.done_timeout):
        record.done = True
    elif not receiver.done():
        record.client_errors.append("done_timeout")
    elif not record.client_errors:
        record.client_errors.append("closed_before_done")
