"""The client's WebSocket as the connection sees it: receive, send, close, peer address.

The gateway's public port is an aiohttp application (so it can also answer the web page and
REST); this adapter gives :class:`gateway.connection.Connection` the small surface it needs and
turns aiohttp's message types into text, bytes, or :class:`SocketClosed`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web


class SocketClosed(Exception):
    """The client's socket is closed (by either side, or broken)."""


class ClientSocket:
    def __init__(self, ws: web.WebSocketResponse, ip: str) -> None:
        self._ws = ws
        self.ip = ip

    @property
    def remote_address(self) -> tuple[str, int]:
        return (self.ip, 0)

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def recv(self) -> str | bytes:
        """The next text (str) or binary (bytes) message; :class:`SocketClosed` at the end.

        An oversize frame makes aiohttp close the socket with 1009 before this returns.
        """
        msg = await self._ws.receive()
        if msg.type is WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is WSMsgType.BINARY:
            return bytes(msg.data)
        raise SocketClosed(f"websocket {msg.type.name.lower()}")

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.recv()
            except SocketClosed:
                return

    async def send(self, data: str) -> None:
        if self._ws.closed:
            raise SocketClosed("websocket closed")
        try:
            await self._ws.send_str(data)
        except (ConnectionError, RuntimeError) as exc:  # aiohttp raises these on a closing socket
            raise SocketClosed(str(exc)) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        # Close reasons are limited to 123 bytes by RFC 6455.
        await self._ws.close(code=code, message=reason.encode()[:123])
