"""The gateway service: WebSocket server, Redis, result router, health server, heartbeat.

Connections are handled by :class:`gateway.connection.Connection`, one object per client;
what they share (settings, Redis, the router, the session store, the cached queue depth)
lives in a :class:`GatewayContext`. On a graceful stop the gateway refuses new connections,
tells each client it is going away (1001, after ``end``-like draining of results already on
their way), and stops.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from common import bus, logs
from common.health import HealthServer, HealthState
from common.heartbeat import Heartbeat
from common.lifecycle import Service
from common.redis_conn import RETRYABLE, connect_with
from common.redis_metrics import watch_redis_memory
from common.security_settings import prepare_listeners
from common.settings import GatewaySettings
from common.tls import scheme
from gateway import metrics
from gateway.limits import Admission, AudioQuota, HandshakeGuard, SubjectSessions
from gateway.router import ResultRouter
from gateway.sessions import SessionStore
from gateway.vad import SileroVad

log = logging.getLogger(__name__)


@dataclass
class GatewayContext:
    """What every connection of one gateway shares. Per-connection state never lives here."""

    settings: GatewaySettings
    redis: aioredis.Redis
    router: ResultRouter
    store: SessionStore
    name: str
    silero: SileroVad | None
    guard: HandshakeGuard
    subject_sessions: SubjectSessions
    audio_quota: AudioQuota
    queue_depth: int = 0
    connections: set[Any] = field(default_factory=set)

    @property
    def overloaded(self) -> bool:
        return self.queue_depth > self.settings.max_queue_depth


class GatewayService(Service):
    name = bus.GATEWAY_SERVICE

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__()
        self.settings = settings
        self.ctx: GatewayContext | None = None
        self.health = HealthState(service=self.name, instance=f"{settings.instance_name}:{settings.gateway_port}")
        self.health_server: HealthServer | None = None
        self.server: Server | None = None
        self.heartbeat: Heartbeat | None = None
        self._depth_task: asyncio.Task[None] | None = None
        self._redis_memory_task: asyncio.Task[None] | None = None
        # Weak keys: a handshake admitted here but failing before the handler runs (client gone,
        # response not sent) must not keep its connection, and its buffers, for ever.
        self._admissions: weakref.WeakKeyDictionary[ServerConnection, Admission] = weakref.WeakKeyDictionary()
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
        router = ResultRouter(redis)
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
        self._depth_task = asyncio.create_task(self._watch_depth(), name="queue-depth")
        self._redis_memory_task = asyncio.create_task(watch_redis_memory(redis), name="redis-memory")
        self.server = await serve(
            self._handle,
            s.host,
            s.gateway_port,
            max_size=s.max_frame_bytes,  # larger frames close the socket with 1009
            max_queue=64,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
            server_header=None,
            ssl=ssl_context,
            process_request=self._process_request,
        )
        sockets = list(self.server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        # The instance name carries the real port (two gateways may share a host).
        name = f"{s.instance_name}:{self.port}"
        self.ctx.name = name
        self.health.instance = name
        self.heartbeat = Heartbeat(redis, self.name, name, s.heartbeat_ttl_seconds,
                                   info=lambda: {"sessions": len(self.ctx.connections) if self.ctx else 0})
        self.heartbeat.start()
        log.info("gateway listening on %s://%s:%d/ (auth %s)", scheme("ws", ssl_context), s.host, self.port,
                 "on" if s.auth_enabled else "off")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake: lockout, per-IP rate, and the token when one comes with it (401)."""
        assert self.ctx is not None
        admission = self.ctx.guard.admit(connection.remote_address[0], request.headers, request.path)
        refusal = admission.refusal
        if refusal is None:
            self._admissions[connection] = admission
            return None
        metrics.REFUSED.labels(refusal.code).inc()
        log.info("handshake refused: %s", refusal.code)  # never the token
        response = connection.respond(refusal.http_status, f"{refusal.code}: {refusal.message}\n")
        for name, value in refusal.retry_after_header().items():
            response.headers[name] = value
        if refusal.http_status == 401:
            response.headers["WWW-Authenticate"] = f'Bearer error="{refusal.code}"'
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        from gateway.connection import Connection

        assert self.ctx is not None
        admission = self._admissions.pop(ws, Admission())
        if self.stopping.is_set():
            await ws.close(1001, "gateway stopping")
            return
        if len(self.ctx.connections) >= self.settings.max_sessions:
            metrics.REFUSED.labels("max_sessions").inc()
            await ws.close(1013, "gateway at MAX_SESSIONS; try again later")
            return
        conn = Connection(self.ctx, ws, admission)
        logs.bind(session_id=conn.session_id)  # every line of this connection's tasks carries it
        self.ctx.connections.add(conn)
        metrics.SESSIONS.set(len(self.ctx.connections))
        try:
            await conn.run()
        finally:
            self.ctx.connections.discard(conn)
            metrics.SESSIONS.set(len(self.ctx.connections))

    async def _watch_depth(self) -> None:
        """One XLEN for the whole gateway every 200 ms, not one per utterance."""
        assert self.ctx is not None
        while True:
            try:
                depth = int(await self.ctx.redis.xlen(bus.AUDIO_JOBS))
                self.ctx.queue_depth = depth
                metrics.QUEUE_DEPTH.set(depth)
            except RETRYABLE as exc:
                log.debug("queue depth unavailable: %s", exc)
            await asyncio.sleep(0.2)

    async def main_loop(self) -> None:
        await self.stopping.wait()

    async def shutdown(self) -> None:
        if self.server is not None:
            self.server.close(close_connections=False)  # stop accepting
        if self.ctx is not None:
            await asyncio.gather(
                *(c.going_away() for c in list(self.ctx.connections)), return_exceptions=True
            )
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for task in (self._depth_task, self._redis_memory_task):
            if task is not None:
                task.cancel()
        self._depth_task = self._redis_memory_task = None
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        if self.ctx is not None:
            await self.ctx.router.close()
            await self.ctx.redis.aclose()
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
        return (self.server is not None, f"port {self.port}" if self.server else "not listening")

    def _details(self) -> dict[str, Any]:
        ctx = self.ctx
        return {
            "sessions": len(ctx.connections) if ctx else 0,
            "max_sessions": self.settings.max_sessions,
            "audio_jobs_depth": ctx.queue_depth if ctx else None,
            "port": self.port,
        }
