"""What goes to one client: a bounded send queue drained by one task, and the socket's close.

A client that stops reading fills the queue; the connection then closes it (1008) instead of
growing the gateway's memory. A replay (a resume's whole log) is the one put that waits, at
the pace the client reads, within ``REPLAY_SEND_SECONDS``. Closing sends what is queued first,
bounded by ``CLOSE_FLUSH_SECONDS``, so a stalled client is never waited for. After
:attr:`Outbox.closed` nothing more is sent; it is the connection's one "closed" flag.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gateway.client_socket import ClientSocket, SocketClosed

CLOSE_FLUSH_SECONDS = 0.5  # what a closing connection waits for its queued sends
REPLAY_SEND_SECONDS = 10.0  # a resuming client must take its replay within this


class Outbox:
    def __init__(self, ws: ClientSocket, size: int) -> None:
        self._ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=size)
        self.closed = False
        self._closing: list[asyncio.Future[Any]] = []  # socket closes under way

    async def put(self, data: str, *, replay: bool = False) -> bool:
        """Queue ``data``; False when the client is not taking what it is sent."""
        if not replay:
            return self.put_nowait(data)
        if self.closed:
            return True
        try:
            await asyncio.wait_for(self.queue.put(data), REPLAY_SEND_SECONDS)
        except asyncio.TimeoutError:
            return False
        return True

    def put_nowait(self, data: str) -> bool:
        """:meth:`put` of a message that is not a replay: it never waits."""
        if self.closed:
            return True
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    def close_now(self, code: int, reason: str) -> None:
        """Close without sending what is queued (the client is stalled, or a part failed)."""
        if not self.closed:
            self.closed = True
            self._closing.append(asyncio.ensure_future(self._close_socket(code, reason)))

    async def close(self, code: int, reason: str) -> None:
        """Send what is queued (bounded), then close."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.queue.join(), CLOSE_FLUSH_SECONDS)
        self._closing.append(asyncio.ensure_future(self._close_socket(code, reason)))

    async def _close_socket(self, code: int, reason: str) -> None:
        with contextlib.suppress(SocketClosed):  # closed from the other side meanwhile
            await self._ws.close(code, reason)

    async def run(self) -> None:
        """The sender task."""
        while (data := await self.queue.get()) is not None:
            try:
                await self._ws.send(data)
            except SocketClosed:
                return
            finally:
                self.queue.task_done()
        self.queue.task_done()

    async def settle(self) -> None:
        """Wait (bounded) for the closes under way."""
        if self._closing:
            await asyncio.wait(self._closing, timeout=CLOSE_FLUSH_SECONDS)
