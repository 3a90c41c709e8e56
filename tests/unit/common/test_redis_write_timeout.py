"""A command write is still bounded by ``socket_timeout`` after common.redis_conn moved the
bound from ``asyncio.wait_for`` to ``asyncio.timeout``, and a write that fits goes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.redis_conn import CPackedConnection


class _Peer:
    """A loopback server that answers every RESP command with +OK until told to stop reading."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self._transports: list[asyncio.BaseTransport] = []

    def stop_reading(self) -> None:
        """No more reads from the sockets: the kernel's buffers fill and the client's write waits."""
        for transport in self._transports:
            assert isinstance(transport, asyncio.ReadTransport)
            transport.pause_reading()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._transports.append(writer.transport)
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"*"):  # one command: its arguments follow as $len / data lines
                for _ in range(int(line[1:])):
                    size = int((await reader.readline())[1:])
                    await reader.readexactly(size + 2)
                writer.write(b"+OK\r\n")
                await writer.drain()


@pytest.fixture
async def peer() -> AsyncIterator[tuple[_Peer, int]]:
    p = _Peer()
    p.server = await asyncio.start_server(p._serve, "127.0.0.1", 0)
    port = p.server.sockets[0].getsockname()[1]
    async with p.server:
        yield p, port


async def test_a_write_that_fits_goes_through(peer: tuple[_Peer, int]) -> None:
    _, port = peer
    conn = CPackedConnection(host="127.0.0.1", port=port, socket_timeout=1.0, protocol=2)
    await conn.connect()
    await conn.send_command("SET", "k", b"v" * 100_000)
    assert await conn.read_response() == b"OK"
    assert conn.socket_timeout == 1.0  # put back after the write
    await conn.disconnect()


async def test_a_write_the_server_does_not_take_times_out(peer: tuple[_Peer, int]) -> None:
    p, port = peer
    conn = CPackedConnection(host="127.0.0.1", port=port, socket_timeout=0.3, protocol=2)
    await conn.connect()
    p.stop_reading()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RedisTimeoutError):
        await conn.send_command("SET", "k", b"v" * (64 << 20))
    assert loop.time() - started < 5.0  # bounded by the 0.3 s limit, not redis-py's default
    assert conn.socket_timeout == 0.3
    assert not conn.is_connected  # redis-py's own handling dropped the half-written connection
