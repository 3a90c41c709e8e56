"""The embedded Redis server and the connection helpers, against real servers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common.embedded_redis import EmbeddedRedis, free_port
from common.redis_conn import RedisUnavailable, connect, redact_url

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def test_embedded_redis_starts_on_free_port_and_stops_cleanly() -> None:
    server = EmbeddedRedis().start()
    port = server.port
    assert _port_open(port)
    server.stop()
    server.stop()  # twice is fine
    assert not _port_open(port)


async def test_appendonly_persists_in_given_directory(tmp_path: Path) -> None:
    with EmbeddedRedis(appendonly_dir=tmp_path) as server:
        client = aioredis.Redis.from_url(server.url)
        await client.set("k", "v")
        await client.aclose()
    assert any(p.name.startswith("appendonly") for p in tmp_path.iterdir())
    with EmbeddedRedis(appendonly_dir=tmp_path) as server:
        client = aioredis.Redis.from_url(server.url)
        assert await client.get("k") == b"v"
        await client.aclose()


async def test_password_in_url() -> None:
    with EmbeddedRedis(password="pa55-word") as server:
        client = await connect(server.url, timeout=5)
        assert await client.ping()
        await client.aclose()
        bad = f"redis://:wrong@127.0.0.1:{server.port}/0"
        with pytest.raises(Exception) as info:
            c = await connect(bad, timeout=1)
            await c.aclose()
        assert "pa55-word" not in str(info.value)
    assert redact_url("redis://u:pa55@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


async def test_connect_waits_for_a_server_that_starts_late() -> None:
    port = free_port()
    server = EmbeddedRedis(port)

    async def start_later() -> None:
        await asyncio.sleep(0.6)
        await asyncio.to_thread(server.start)

    starter = asyncio.create_task(start_later())
    try:
        client = await connect(f"redis://127.0.0.1:{port}/0", timeout=10)
        assert await client.ping()
        await client.aclose()
    finally:
        await starter
        server.stop()


async def test_connect_gives_up_with_a_clear_error() -> None:
    with pytest.raises(RedisUnavailable) as info:
        await connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    assert "not reachable" in str(info.value)


async def test_client_reconnects_after_server_restart() -> None:
    port = free_port()
    server = EmbeddedRedis(port).start()
    client = await connect(server.url, timeout=5)
    await client.set("a", "1")
    server.stop()
    server = EmbeddedRedis(port).start()
    try:
        assert await client.ping()  # the retry policy reconnects on the next command
    finally:
        await client.aclose()
        server.stop()


async def test_values_round_trip_through_the_c_packed_client() -> None:
    """What the services' client sends (packed by hiredis) is what a server stores."""
    with EmbeddedRedis() as server:
        client = await connect(server.url, timeout=5)
        try:
            values = {"text": "größe €", "int": 7, "float": 0.1, "bytes": b"\x00\xff" * 50_000}
            await client.hset("h", mapping=values)  # type: ignore[arg-type]
            stored = await client.hgetall("h")
            assert stored == {b"text": "größe €".encode(), b"int": b"7", b"float": b"0.1",
                              b"bytes": b"\x00\xff" * 50_000}
            await client.execute_command("CLIENT SETNAME", "gw-1")  # a two-word command name
            assert await client.client_getname() == "gw-1"  # redis-py decodes this reply itself
        finally:
            await client.aclose()


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only (prctl)")
def test_the_server_ends_when_its_owner_is_killed() -> None:
    """An owner SIGKILLed (a crashed test run, the OOM killer) used to leave redis-server
    running on its port; now the kernel sends it SIGTERM (common/parent_death.py)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from common.embedded_redis import EmbeddedRedis\n"
         "s = EmbeddedRedis().start(); print(s.pid, s.port, flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout is not None
        pid, port = (int(x) for x in owner.stdout.readline().split())
        assert _port_open(port) and not _gone(pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 10  # SIGTERM: redis-server shuts down at once
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = _gone(pid)
        if not ended:
            os.kill(pid, signal.SIGKILL)  # ours: it was started by our child
        assert ended, "redis-server outlived its SIGKILLed owner"
        assert not _port_open(port)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_the_death_signal_is_asked_for_only_on_the_main_thread() -> None:
    """The signal follows the thread that forked: from a pool thread it would fire when that
    thread ends, with the owner still alive."""
    import threading

    from common import parent_death

    assert parent_death.preexec() is not None
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(parent_death.preexec()))
    thread.start()
    thread.join()
    assert seen == [None]
