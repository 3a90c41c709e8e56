"""The asyncio WebSocket client: streams an audio source, receives results, reconnects.

No Qt here: a :class:`ClientListener` gets the events (the Qt worker turns them into
signals). After a dropped connection the client reconnects with backoff and resumes with
``config`` {session_id, last_seq}; audio captured meanwhile waits in a bounded queue. The
token goes in an ``Authorization: Bearer`` header and never into a log line or a message.
The protocol itself (messages, session state, the socket) is :mod:`speech_client`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from client_gui.audio_sources import AudioSource, AudioSourceError
from speech_client.client import FATAL_HTTP_STATUS, SpeechClient
from speech_client.protocol import Config, Done, End, Error, Ready, ServerMessage
from speech_client.session import ClientSession

log = logging.getLogger(__name__)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ClientOptions:
    url: str = "ws://127.0.0.1:5026/"
    token: str | None = None
    source_language: str = "auto"
    target_language: str | None = None
    partials: bool = True
    reconnect: bool = True
    max_reconnect_attempts: int = 20
    max_reconnect_delay: float = 8.0
    open_timeout: float = 10.0
    # How long to wait for ``done`` after ``end`` before closing anyway.
    drain_timeout: float = 60.0
    max_queued_chunks: int = 600

    def __repr__(self) -> str:
        # Never show the token, even in a debugger or a log of the options.
        token = "***" if self.token else None
        return (
            f"ClientOptions(url={self.url!r}, token={token}, "
            f"source={self.source_language!r}, target={self.target_language!r})"
        )


class ClientListener(Protocol):
    def on_state(self, state: ConnectionState, detail: str) -> None: ...

    def on_message(self, message: ServerMessage) -> None: ...

    def on_error(self, text: str) -> None: ...


class FatalConnectionError(RuntimeError):
    """The gateway refused us in a way that retrying will not fix."""


class StreamClient:
    """One streaming session: run :meth:`run` in an event loop; control it from that loop."""

    def __init__(self, options: ClientOptions, source: AudioSource, listener: ClientListener) -> None:
        self._options = options
        self._source = source
        self._listener = listener
        self._config: dict[str, Any] = {
            "source_language": options.source_language,
            "target_language": options.target_language,
            "partials": options.partials,
        }
        self._session = ClientSession()
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=options.max_queued_chunks)
        self._client: SpeechClient | None = None
        self._stopping = asyncio.Event()
        self._source_done = False
        self._done = False
        self.dropped_chunks = 0

    @property
    def session_id(self) -> str | None:
        return self._session.session_id

    async def update_config(self, **fields: Any) -> None:
        """Change languages (or other config) now; remembered for reconnects."""
        self._config.update(fields)
        client = self._client
        if client is not None:
            with contextlib.suppress(ConnectionClosed):
                await client.send(Config.model_validate(fields))

    def stop(self) -> None:
        """Stop capturing, let the gateway finish pending results, then close."""
        self._stopping.set()
        self._source.close()

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump_audio(), name="audio-pump")
        try:
            await self._connection_loop()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._source.close()
            self._listener.on_state(ConnectionState.STOPPED, "")

    async def _pump_audio(self) -> None:
        try:
            async for chunk in self._source.chunks():
                if self._stopping.is_set():
                    break
                if self._audio.full():
                    self._audio.get_nowait()
                    self.dropped_chunks += 1
                self._audio.put_nowait(chunk)
        except AudioSourceError as exc:
            self._listener.on_error(str(exc))
        finally:
            self._source_done = True
            if self._audio.full():
                self._audio.get_nowait()
            self._audio.put_nowait(None)

    async def _connection_loop(self) -> None:
        attempt = 0
        while True:
            state = ConnectionState.CONNECTING if attempt == 0 else ConnectionState.RECONNECTING
            self._listener.on_state(state, f"attempt {attempt + 1}" if attempt else self._options.url)
            try:
                await self._one_connection()
                return
            except FatalConnectionError as exc:
                self._listener.on_error(str(exc))
                return
            except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                reason = _describe_failure(exc)
            if self._done or (self._stopping.is_set() and self._source_done and self._audio.empty()):
                return
            if not self._options.reconnect or attempt >= self._options.max_reconnect_attempts:
                self._listener.on_error(f"Connection lost: {reason}")
                return
            delay = min(self._options.max_reconnect_delay, 0.5 * 2**attempt)
            attempt += 1
            self._listener.on_state(
                ConnectionState.RECONNECTING, f"{reason}; retrying in {delay:.1f} s"
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return  # stopped while disconnected: nothing can be delivered any more
            except asyncio.TimeoutError:
                pass

    async def _one_connection(self) -> None:
        try:
            client = await SpeechClient.connect(
                self._options.url,
                token=self._options.token,
                session=self._session,
                open_timeout=self._options.open_timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in FATAL_HTTP_STATUS:
                raise FatalConnectionError(
                    f"The gateway refused the connection (HTTP {status}"
                    f"{': check the token' if status in (401, 403) else ''})"
                ) from exc
            raise
        except InvalidURI as exc:
            raise FatalConnectionError(f"Bad gateway URL: {exc}") from exc
        self._client = client
        try:
            await client.resume(sample_rate=self._source.sample_rate, **self._config)
            self._listener.on_state(ConnectionState.CONNECTED, "")
            sender = asyncio.create_task(self._send_audio(client), name="audio-sender")
            try:
                await self._receive(client)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await sender
        finally:
            self._client = None
            await client.close()
        if self._done:
            return
        if client.closed_for_good:
            raise FatalConnectionError(
                f"The gateway closed the connection (code {client.close_code}: {client.close_reason or 'policy'})"
            )
        if self._stopping.is_set() and self._source_done:
            return
        raise ConnectionError(f"closed by the gateway (code {client.close_code})")

    async def _send_audio(self, client: SpeechClient) -> None:
        while True:
            chunk = await self._audio.get()
            if chunk is None:
                # Put the marker back so a reconnect also ends the stream properly.
                self._audio.put_nowait(None)
                await client.send(End())
                self._listener.on_state(ConnectionState.STOPPING, "waiting for the last results")
                await asyncio.sleep(self._options.drain_timeout)
                await client.close()
                return
            await client.send_audio(chunk)

    async def _receive(self, client: SpeechClient) -> None:
        # Replays after a resume are dropped by the client's session; a close ends the loop.
        async for message in client.messages():
            if isinstance(message, Ready):
                self._listener.on_state(ConnectionState.CONNECTED, f"session {message.session_id[:8]}")
            if isinstance(message, Error):
                self._listener.on_error(f"{message.code}: {message.message}")
            self._listener.on_message(message)
            if isinstance(message, Done):
                self._done = True
                return


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"connection closed (code {exc.rcvd.code if exc.rcvd else 'none'})"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__
