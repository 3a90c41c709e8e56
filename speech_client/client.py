"""A small asyncio client of the gateway on ``websockets``: one connection, typed messages.

    async with await SpeechClient.connect("ws://127.0.0.1:5026/", token=token) as client:
        await client.send(Config(source_language="en", target_language="de"))
        await client.send_audio(pcm_bytes)
        await client.send(End())
        async for message in client.messages():   # typed, replays dropped, ends at close
            ...

The token goes in an ``Authorization: Bearer`` header and never into a log line (the
socket's logger redacts it). Pass the same :class:`ClientSession` to the next connection to
resume: :meth:`SpeechClient.resume` sends the ``config`` that carries ``session_id``,
``last_seq`` and the resume secret, and results at or below ``last_seq`` are dropped.
Reconnecting with backoff is the caller's policy (the GUI has one); this class is one socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from speech_client.protocol import (
    ClientMessage,
    Config,
    ProtocolError,
    ServerMessage,
    parse_server_message,
)
from speech_client.session import ClientSession

log = logging.getLogger(__name__)

#: Close codes after which reconnecting cannot help: policy (auth, limits), message too big.
FATAL_CLOSE_CODES = frozenset({1008, 1009})
#: Handshake answers after which reconnecting cannot help.
FATAL_HTTP_STATUS = frozenset({400, 401, 403, 404})


class _RedactAuthorization(logging.Filter):
    """websockets logs handshake headers at DEBUG; the bearer token must not reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 2:
            key, _ = record.args
            if str(key).lower() == "authorization":
                record.args = (key, "Bearer ***")
        return True


#: The sockets' own logger, so the redaction applies to this client's connections only.
ws_log = logging.getLogger(f"{__name__}.websocket")
ws_log.addFilter(_RedactAuthorization())


def auth_headers(token: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token}"} if token else None


class SpeechClient:
    """One WebSocket connection to the gateway, speaking typed protocol v1 messages."""

    def __init__(self, ws: ClientConnection, session: ClientSession | None = None) -> None:
        self.ws = ws
        self.session = session if session is not None else ClientSession()
        self.bad_frames = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        session: ClientSession | None = None,
        open_timeout: float = 10.0,
        max_size: int = 2**22,
        **websocket_options: Any,
    ) -> SpeechClient:
        """Open the socket (raises websockets' InvalidStatus / InvalidHandshake, OSError or
        TimeoutError when it cannot). ``websocket_options`` go to ``websockets.connect``
        (e.g. ``proxy=None``, ``compression=None``)."""
        ws = await connect(
            url,
            additional_headers=auth_headers(token),
            open_timeout=open_timeout,
            max_size=max_size,
            logger=ws_log,
            **websocket_options,
        )
        return cls(ws, session)

    async def __aenter__(self) -> SpeechClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ sending

    async def send(self, message: ClientMessage) -> None:
        await self.ws.send(message.to_json())

    async def send_audio(self, pcm: bytes) -> None:
        """Int16 little-endian mono PCM at the session's sample rate."""
        await self.ws.send(pcm)

    async def resume(self, **settings: Any) -> Config:
        """Send the connection's first ``config``: ``settings`` plus, when this session has
        been ready before, what resumes it. Returns what was sent."""
        config = self.session.resume_config(**settings)
        await self.send(config)
        return config

    # ------------------------------------------------------------------ receiving

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Server messages as they come, replays dropped; ends when the socket closes (read
        :attr:`close_code` then). A frame that is not a v1 message is logged and skipped."""
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    continue  # protocol v1 sends only JSON text
                try:
                    message = parse_server_message(raw)
                except ProtocolError as exc:
                    self.bad_frames += 1
                    log.warning("ignoring a bad message from the gateway: %s", exc)
                    continue
                if self.session.accept(message):
                    yield message
        except ConnectionClosed:
            return  # any close ends the stream; the code says how

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    @property
    def closed_for_good(self) -> bool:
        """Closed in a way that reconnecting will not fix (auth, limits, frame too large)."""
        return self.close_code in FATAL_CLOSE_CODES

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)
