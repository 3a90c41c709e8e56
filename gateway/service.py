"""The gateway service: the public port, Redis, result router, health server, heartbeat.

The public port is one aiohttp application (``gateway.http_app``): the WebSocket, the page and
REST. Connections are handled by :class:`gateway.connection.Connection`, one object per client;
what they share (settings, Redis, the router, the session store, the cached queue depth)
lives in a :class:`GatewayContext`. On a graceful stop the gateway refuses new connections,
tells each client it is going away (1001, after ``end``-like draining of results already on
their way), and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from common import bus, logs, memdebug
from common.health import HealthServer, HealthState
from common.heartbeat import Heartbeat
from common.lifecycle import Service
from common.memtrim import HeapTrimmer, TrimPolicy
from common.periodic import STOP_SECONDS, repeat, stop_task
from common.redis_conn import RETRYABLE, connect_with
from common.redis_metrics import watch_redis_memory
from common.security_settings import prepare_listeners
from common.settings import GatewaySettings
from common.tls import scheme
from gateway import metrics
from gateway.client_socket import ClientSocket
from gateway.connection import Connection
from gateway.context import GatewayContext
from gateway.http_app import build_app, client_ip
from gateway.limits import AudioQuota, HandshakeGuard, SubjectSessions
from gateway.router import ResultRouter
from gateway.sessions import SessionStore
from gateway.vad import SileroVad

log = logging.getLogger(__name__)


class GatewayService(Service):
    name = bus.GATEWAY_SERVICE

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__()
        self.settings = settings
        self.ctx: GatewayContext | None = None
        self.health = HealthState(service=self.name, instance=f"{settings.instance_name}:{settings.gateway_port}")
        self.health_server: HealthServer | None = None
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.heartbeat: Heartbeat | None = None
        self._depth_task: asyncio.Task[None] | None = None
        self._redis_memory_task: asyncio.Task[None] | None = None
        self._trim_task: asyncio.Task[None] | None = None
        self._pollers_stop = asyncio.Event()  # ends the two pollers (common/periodic.py)
        # Sessions are its unit of work: free heap goes back when none is open (common.memtrim).
        self.trim = HeapTrimmer(TrimPolicy(
            idle_seconds=settings.memory_trim_idle_seconds,
            soft_limit_bytes=settings.memory_soft_limit_mb * 2**20,
        ), memdebug.rss_bytes, metrics.MEMORY_TRIMS)
        self.port = settings.gateway_port

    async def startup(self) -> None:
        s = self.settings
        ssl_context = prepare_listeners(s, redis_url=s.redis_url.get_secret_value())
        self.health.add_check("redis", self._check_redis)
        self.health.add_check("websocket", self._check_ws)
        self.health.details.append(self._details)
        self.health_server = HealthServer.for_service(self.health, s, ssl_context)
        await self.health_server.start()
        redis = await connect_with(s)
        router = ResultRouter(redis, s.session_ttl_seconds)
        await router.start()
        silero = await asyncio.to_thread(SileroVad.shared) if s.use_silero else None
        name = f"{s.instance_name}:{s.gateway_port}"
        self.ctx = GatewayContext(
            settings=s, redis=redis, router=router,
            store=SessionStore(redis, s.session_ttl_seconds, s.session_log_maxlen),
            name=name, silero=silero,
            guard=HandshakeGuard.from_settings(s),
            subject_sessions=SubjectSessions(redis, s.sessions_per_subject),
            audio_quota=AudioQuota(redis, s.audio_seconds_per_subject_per_minute),
        )
        self._pollers_stop = asyncio.Event()
        self._depth_task = asyncio.create_task(
            repeat(self._sample_depth, 0.2, self._pollers_stop, what="queue depth"), name="queue-depth")
        self._redis_memory_task = asyncio.create_task(watch_redis_memory(redis, self._pollers_stop),
                                                      name="redis-memory")
        self._trim_task = asyncio.create_task(self.trim.idle_loop(), name="trim-when-idle")
        # Handlers are cancelled if still running this long after the listener closed.
        self.runner = web.AppRunner(build_app(self.ctx, self._websocket), access_log=None, shutdown_timeout=3.0)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, s.host, s.gateway_port, ssl_context=ssl_context)
        await self.site.start()
        addresses = self.runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        # The instance name carries the real port (two gateways may share a host).
        name = f"{s.instance_name}:{self.port}"
        self.ctx.name = name
        self.health.instance = name
        self.heartbeat = Heartbeat(redis, self.name, name, s.heartbeat_ttl_seconds,
                                   info=lambda: {"sessions": len(self.ctx.connections) if self.ctx else 0})
        self.heartbeat.start()
        log.info("gateway listening on %s://%s:%d/ (auth %s)", scheme("ws", ssl_context), s.host, self.port,
                 "on" if s.auth_enabled else "off")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """The handshake (lockout, per-IP rate, the token when one comes with it: 401), then
        one :class:`Connection` for the socket's lifetime."""
        assert self.ctx is not None
        ip = client_ip(request)
        admission = self.ctx.guard.admit(ip, request.headers, request.path_qs)
        refusal = admission.refusal
        if refusal is not None:
            metrics.REFUSED.labels(refusal.code).inc()
            log.info("handshake refused: %s", refusal.code)  # never the token
            headers = refusal.retry_after_header()
            if refusal.http_status == 401:
                headers["WWW-Authenticate"] = f'Bearer error="{refusal.code}"'
            return web.Response(status=refusal.http_status, text=f"{refusal.code}: {refusal.message}\n",
                                headers=headers)
        ws = web.WebSocketResponse(
            max_msg_size=self.settings.max_frame_bytes,  # larger frames close the socket with 1009
            heartbeat=20, timeout=5,
            # No permessage-deflate: the bulk is PCM, which deflate barely shrinks, and each
            # compressing socket costs zlib state (hundreds of KB) plus CPU on every frame.
            compress=False,
        )
        ctx = self.ctx
        try:
            try:
                await ws.prepare(request)
            except ConnectionError:  # the client went away during its own handshake
                log.debug("client left during the WebSocket handshake")
                return ws
            sock = ClientSocket(ws, ip)
            if self.stopping.is_set():
                await sock.close(1001, "gateway stopping")
                return ws
            if len(ctx.connections) >= self.settings.max_sessions:
                metrics.REFUSED.labels("max_sessions").inc()
                await sock.close(1013, "gateway at MAX_SESSIONS; try again later")
                return ws
            conn = Connection(ctx, sock, admission)
            logs.bind(session_id=conn.core.session_id)  # every line of this connection's tasks carries it
            ctx.connections.add(conn)
            metrics.SESSIONS.set(len(ctx.connections))
            self.trim.started()
            try:
                await conn.run()
            finally:
                ctx.connections.discard(conn)
                metrics.SESSIONS.set(len(ctx.connections))
                await self.trim.ended()
        finally:
            # Frees the pending-auth slot the handshake took, if the connection still holds it
            # (it also frees itself after AUTH_TIMEOUT_SECONDS).
            ctx.guard.auth_settled(ip, admission)
        return ws

    async def _sample_depth(self) -> None:
        """One XLEN per shard for the whole gateway every 200 ms, not one per utterance; the
        depth is their sum (in cluster mode the shards sit on different masters)."""
        assert self.ctx is not None
        lengths = await asyncio.gather(*(self.ctx.redis.xlen(s) for s in bus.audio_jobs_streams()))
        depth = sum(int(n) for n in lengths)
        self.ctx.queue_depth = depth
        metrics.QUEUE_DEPTH.set(depth)

    async def main_loop(self) -> None:
        await self.stopping.wait()

    async def shutdown(self) -> None:
        if self.site is not None:
            await self.site.stop()  # stop accepting
            self.site = None
        if self.ctx is not None:
            await asyncio.gather(
                *(c.going_away() for c in list(self.ctx.connections)), return_exceptions=True
            )
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await stop_task(self._depth_task, self._pollers_stop, what="queue depth poller")
        await stop_task(self._redis_memory_task, self._pollers_stop, what="redis memory poller")
        if self._trim_task is not None:
            self._trim_task.cancel()
            await asyncio.wait({self._trim_task}, timeout=STOP_SECONDS)
        self._depth_task = self._redis_memory_task = self._trim_task = None
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        if self.ctx is not None:
            await self.ctx.router.close()
            # Bounded: with Redis refusing connections, a command still retrying holds the
            # pool, and closing it waited for ever (a CI teardown hung 300 s here).
            with contextlib.suppress(asyncio.TimeoutError, *RETRYABLE):
                await asyncio.wait_for(self.ctx.redis.aclose(), 2.0)
            self.ctx = None
        if self.health_server is not None:
            await self.health_server.stop()
            self.health_server = None

    async def _check_redis(self) -> tuple[bool, str]:
        if self.ctx is None:
            return False, "not connected"
        await self.ctx.redis.ping()
        return True, "ok"

    async def _check_ws(self) -> tuple[bool, str]:
        return (self.site is not None, f"port {self.port}" if self.site else "not listening")

    def _details(self) -> dict[str, Any]:
        ctx = self.ctx
        return {
            "sessions": len(ctx.connections) if ctx else 0,
            "max_sessions": self.settings.max_sessions,
            "audio_jobs_depth": ctx.queue_depth if ctx else None,
            "port": self.port,
        }
