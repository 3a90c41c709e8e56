"""A client that stops reading is disconnected instead of growing the gateway's memory."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from common.settings import GatewaySettings
from gateway.connection import Connection
from gateway.session_actions import Send


class StalledSocket:
    """The boundary: a WebSocket whose peer never reads (send never completes)."""

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None

    async def send(self, data: Any) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


async def test_full_send_queue_disconnects_the_client() -> None:
    settings = GatewaySettings(send_queue_size=8, use_silero=False)
    ctx = SimpleNamespace(settings=settings, silero=None, name="gw", queue_depth=0,
                          guard=SimpleNamespace(auth_enabled=False))
    ws = StalledSocket()
    conn = Connection(ctx, ws)  # type: ignore[arg-type]
    await conn._do([Send({"type": "vad", "event": "speech_start", "t": 0.0, "seq": i}) for i in range(8)])
    assert not conn.closed and ws.closed_with is None
    await conn._do([Send({"type": "vad", "event": "speech_end", "t": 1.0, "seq": 9})])
    assert conn.closed
    await asyncio.sleep(0)  # the close runs in the background
    await asyncio.sleep(0)
    assert ws.closed_with is not None and ws.closed_with[0] == 1008
    assert conn.outbox.queue.qsize() == 8  # bounded: nothing more was queued
