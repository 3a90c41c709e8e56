"""The connection shell's sends: a client that stops reading is disconnected instead of
growing the gateway's memory, and results keep their stream order whether the router's
quick path or the driver carries them."""

from __future__ import annotations

import asyncio
import json
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


def _ctx(send_queue_size: int = 8) -> Any:
    settings = GatewaySettings(send_queue_size=send_queue_size, use_silero=False)
    return SimpleNamespace(settings=settings, silero=None, name="gw", queue_depth=0,
                           guard=SimpleNamespace(auth_enabled=False))


async def test_full_send_queue_disconnects_the_client() -> None:
    ctx = _ctx()
    ws = StalledSocket()
    conn = Connection(ctx, ws)  # type: ignore[arg-type]
    await conn.effects.run([Send({"type": "vad", "event": "speech_start", "t": 0.0, "seq": i}) for i in range(8)])
    assert not conn.closed and ws.closed_with is None
    await conn.effects.run([Send({"type": "vad", "event": "speech_end", "t": 1.0, "seq": 9})])
    assert conn.closed
    await asyncio.sleep(0)  # the close runs in the background
    await asyncio.sleep(0)
    assert ws.closed_with is not None and ws.closed_with[0] == 1008
    assert conn.outbox.queue.qsize() == 8  # bounded: nothing more was queued


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, data: str) -> None:
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


async def _sent(ws: RecordingSocket, n: int) -> None:
    while len(ws.sent) < n:
        await asyncio.sleep(0)


class EchoCore:
    """Stands in for the session core, which this test is not about: each result becomes one
    message naming it."""

    session_id = "s"

    def on_result(self, item: Any, clock: Any) -> list[Send]:
        return [Send({"type": "partial", "text": item.text})]

    def deadline(self, clock: Any) -> float:
        return clock.now + 3600


async def test_results_keep_stream_order_through_the_quick_path_and_the_driver() -> None:
    ws = RecordingSocket()
    conn = Connection(_ctx(64), ws)  # type: ignore[arg-type]
    conn.core = EchoCore()  # type: ignore[assignment]
    result = lambda text: SimpleNamespace(text=text)  # noqa: E731
    sender = asyncio.create_task(conn.outbox.run())
    async with conn._lock:  # the reader is in a core call: results wait for the driver
        conn._on_entry("s", result("a"))
    conn._on_entry("s", result("b"))  # the core is free, but "a" is still queued: "b" must not overtake it
    assert conn.outbox.queue.qsize() == 0 and conn.inbox.qsize() == 2
    driver = asyncio.create_task(conn._driver())
    await asyncio.wait_for(_sent(ws, 2), 5)
    conn._on_entry("s", result("c"))  # nothing else in hand: sent at once, no hop through the driver
    assert conn.inbox.qsize() == 0 and conn.outbox.queue.qsize() == 1
    await asyncio.wait_for(_sent(ws, 3), 5)
    assert [json.loads(m)["text"] for m in ws.sent] == ["a", "b", "c"]
    conn.outbox.closed = True
    for task in (driver, sender):
        task.cancel()
    await asyncio.gather(driver, sender, return_exceptions=True)
