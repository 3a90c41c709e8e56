"""Redis connections from ``REDIS_URL``: passwords, ACL users, ``rediss://``, retry and backoff.

redis-py's client reconnects by itself on the next command after a lost connection; the
``Retry`` object below makes it retry a failed command with exponential backoff instead of
failing on the first broken socket. At start, :func:`connect` waits (with backoff) until the
server answers PING, so services can start before Redis does.

With ``REDIS_CLUSTER=true`` the client is redis-py's :class:`redis.asyncio.cluster.RedisCluster`,
started from the one node ``REDIS_URL`` names: it discovers the others, routes each command by
key slot, follows MOVED/ASK, and on a lost node refreshes the slot map and retries (the same
``Retry``, sized to outlast a replica's promotion). It has the same command methods as the
single-node client, so every service keeps one type of handle; :func:`connect_with` is the one
place that picks the kind, and it also sets the key layout (:func:`common.bus.configure`) so
names and client agree.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, DataError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common import bus
from common.lifecycle import StartupRefused

if TYPE_CHECKING:
    from common.settings import CommonSettings

log = logging.getLogger(__name__)

# The cluster ones are transient too: a slot without a live master during a failover
# (CLUSTERDOWN, SlotNotCovered), a multi-key command mid-resharding (TRYAGAIN).
RETRYABLE = (
    RedisConnectionError, RedisTimeoutError, ConnectionResetError, OSError,
    ClusterDownError, TryAgainError, RedisClusterException,
)

#: The longest a stopping service waits for one of its last writes (see :func:`last_write`).
GOODBYE_SECONDS = 2.0


async def last_write(awaitable: Awaitable[Any]) -> bool:
    """One of a stopping service's last Redis writes (a heartbeat's delete, a wake-up), bounded
    by ``GOODBYE_SECONDS``: a Redis that does not answer must not hold a shutdown through the
    client's retries, and what is not written expires by its TTL. False when it did not land."""
    try:
        await asyncio.wait_for(awaitable, GOODBYE_SECONDS)
    except (asyncio.TimeoutError, *RETRYABLE):
        return False
    return True


# How long a cluster command keeps retrying through a failover: longer than a replica needs
# to notice its master is gone (cluster-node-timeout, 5 s in infra/k8s) and win the election.
FAILOVER_BUDGET_SECONDS = 15.0
_CLUSTER_TRANSIENT = (
    RedisConnectionError, RedisTimeoutError, ConnectionResetError, ClusterDownError, SlotNotCoveredError,
    TryAgainError,
)


class BackoffRedisCluster(RedisCluster):
    """``RedisCluster`` that waits between its retries of a command.

    redis-py's cluster client retries a command on a lost node after refreshing the slot
    map, but back to back: its retries are spent in milliseconds, while a replica takes
    seconds to be promoted. This waits with exponential backoff, up to
    ``FAILOVER_BUDGET_SECONDS`` in all. (Pipelines have their own loop: 0.25 s between
    tries, as many tries as the ``Retry`` allows; see ``make_client``.)
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + FAILOVER_BUDGET_SECONDS
        delay = 0.05
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except _CLUSTER_TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.debug("cluster command %s failed (%s); retrying in %.2fs", args[:1], exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


class _CPacked:
    """Commands packed by hiredis's C packer, as redis-py's sync client does when hiredis is
    installed (its asyncio client always packs in Python). The same bytes on the wire for a
    fraction of the CPU: a 15-argument EVALSHA, the gateway's write of each message it sends,
    takes 3 µs instead of 13. Arguments hiredis does not take (a memoryview) go the Python way;
    a type neither takes is redis-py's ``DataError``, as before. (redis-py's own
    ``HiredisRespSerializer`` does the same but first copies every argument through a
    generator: 6.8 µs for that EVALSHA, against 2.4 µs here and 11.2 µs in Python.)"""

    socket_timeout: float | None  # redis-py's connection sets it

    def pack_command(self, *args: Any) -> list[bytes]:
        # A command name with a space in it ("CLIENT SETNAME") is several arguments.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            if any(isinstance(a, memoryview) for a in args):
                return super().pack_command(*args)  # type: ignore[misc]
            raise DataError(f"cannot send {[type(a).__name__ for a in args]} to Redis") from None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """The write bounded by ``asyncio.timeout`` in the caller's task. redis-py bounds it
        with ``asyncio.wait_for``, which on Python 3.11 runs the write as a new task: one more
        event-loop turn for every command (73 us per XADD here, on each hop of a final's path
        through the gateway and the worker). Its own error handling stays: it is run with no
        timeout of its own, inside this one."""
        limit = self.socket_timeout
        if sys.version_info >= (3, 12) or not limit:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        self.socket_timeout = None
        try:
            async with asyncio.timeout(limit):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except TimeoutError as exc:  # the limit ran out (redis-py disconnected on the cancel)
            raise RedisTimeoutError("Timeout writing to socket") from exc
        finally:
            self.socket_timeout = limit


class CPackedConnection(_CPacked, Connection):
    pass


class CPackedSSLConnection(_CPacked, SSLConnection):
    pass


class CPackedUnixConnection(_CPacked, UnixDomainSocketConnection):
    pass


#: The C-packed twin of each connection class a URL can choose (redis://, rediss://, unix://).
_C_PACKED: dict[type, type] = {
    Connection: CPackedConnection, SSLConnection: CPackedSSLConnection,
    UnixDomainSocketConnection: CPackedUnixConnection,
}


class RedisUnavailable(StartupRefused):
    """Redis did not answer within the start-up budget."""


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def make_client(
    url: str, *, ca_file: Path | None = None, decode_responses: bool = False, cluster: bool = False
) -> aioredis.Redis:
    """A client for ``url`` that retries failed commands with backoff (no I/O yet).

    ``cluster``: a :class:`RedisCluster` seeded from ``url``. Typed as the single-node client
    because every caller uses only the command methods both share (see the module docstring).
    """
    kwargs: dict[str, Any] = {
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        "health_check_interval": 15,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "decode_responses": decode_responses,
    }
    if url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if ca_file is not None:
            kwargs["ssl_ca_certs"] = str(ca_file)
    if cluster:
        # A pipeline retries every 0.25 s, this many times: FAILOVER_BUDGET_SECONDS in all.
        kwargs["retry"] = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=int(FAILOVER_BUDGET_SECONDS * 4))
        return cast(aioredis.Redis, BackoffRedisCluster.from_url(url, **kwargs))
    kwargs["retry"] = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=6)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **kwargs)
    pool = client.connection_pool  # no connection made yet; the URL chose the class
    pool.connection_class = _C_PACKED.get(pool.connection_class, pool.connection_class)
    return client


def is_cluster(client: object) -> bool:
    """True for a cluster client (some commands differ: pub/sub node, per-shard reads)."""
    return isinstance(client, RedisCluster)


async def wait_until_ready(client: aioredis.Redis, *, timeout: float, what: str = "redis") -> None:
    """PING with exponential backoff until it answers or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            await client.ping()
            if attempt > 1:
                log.info("%s reachable after %d attempts", what, attempt)
            return
        except RETRYABLE as exc:
            if time.monotonic() + delay > deadline:
                raise RedisUnavailable(f"{what} not reachable after {timeout:.0f}s: {exc}") from None
            if attempt == 1 or attempt % 10 == 0:
                log.warning("%s not reachable yet (%s); retrying", what, exc.__class__.__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def connect_with(settings: CommonSettings, *, decode_responses: bool = False) -> aioredis.Redis:
    """A ready client from a service's settings (REDIS_URL, REDIS_CA_FILE, REDIS_CLUSTER,
    start-up budget); also sets this process's key layout (REDIS_CLUSTER, STREAM_SHARDS)."""
    bus.configure(cluster=settings.redis_cluster, shards=settings.stream_shards)
    return await connect(
        settings.redis_url.get_secret_value(), ca_file=settings.redis_ca_file,
        timeout=settings.redis_connect_timeout_seconds, decode_responses=decode_responses,
        cluster=settings.redis_cluster,
    )


async def connect(
    url: str, *, ca_file: Path | None = None, timeout: float = 30.0, decode_responses: bool = False,
    cluster: bool = False,
) -> aioredis.Redis:
    """A ready client: created from the URL, then PINGed with backoff until it answers."""
    client = make_client(url, ca_file=ca_file, decode_responses=decode_responses, cluster=cluster)
    try:
        await wait_until_ready(client, timeout=timeout, what=f"redis at {redact_url(url)}")
    except BaseException:
        await client.aclose()
        raise
    return client


class ResultPipeline:
    """The commands a worker sends once a batch is done: results and follow-up jobs, in one
    non-transactional pipeline (on a cluster, redis-py's cluster pipeline sends each node its
    share)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._pipe = redis.pipeline(transaction=False)

    def xadd(self, name: str, fields: dict[Any, Any], **kwargs: Any) -> None:
        self._pipe.xadd(name, fields, **kwargs)

    def expire(self, name: str, seconds: int) -> None:
        self._pipe.expire(name, seconds)

    async def execute(self) -> None:
        await self._pipe.execute()

    async def __aenter__(self) -> ResultPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pipe.reset()
