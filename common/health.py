"""The health and metrics HTTP server every service mounts: /health, /ready, /metrics.

``/health`` is liveness: 200 with a JSON status (``ok`` or ``degraded`` with the reasons) as
long as the process serves. ``/ready`` is 200 only when every readiness check passes (Redis
reachable, model loaded), else 503 with the failing checks. ``/metrics`` is Prometheus text
from prometheus-client's registry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest

from common.auth import bearer_matches
from common.memdebug import AllocationTracker, rss_bytes

if TYPE_CHECKING:
    from common.settings import CommonSettings

log = logging.getLogger(__name__)

# 1 while /health reports the degradation ``reason`` (a fixed key per cause, so few series);
# the TranslationWorkerDegraded alert of infra/prometheus/rules.yml reads it.
DEGRADED = Gauge("service_degraded", "1 while this service reports a degradation on /health, by reason", ["reason"])

Check = Callable[[], Awaitable[tuple[bool, str]]]
Details = Callable[[], dict[str, Any]]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class HealthState:
    """What a service tells its health server: readiness checks, degradations, details."""

    service: str
    instance: str
    ready_checks: dict[str, Check] = field(default_factory=dict)
    details: list[Details] = field(default_factory=list)
    degraded: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    check_timeout: float = 2.0
    _last_failure: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def add_check(self, name: str, check: Check) -> None:
        self.ready_checks[name] = check

    def set_degraded(self, reason_key: str, reason: str | None) -> None:
        """Mark (or with ``None`` clear) a degradation shown on /health."""
        if reason is None:
            self.degraded.pop(reason_key, None)
            DEGRADED.labels(reason_key).set(0)
        else:
            self.degraded[reason_key] = reason
            DEGRADED.labels(reason_key).set(1)

    async def run_checks(self) -> dict[str, tuple[bool, str]]:
        async def one(name: str, check: Check) -> tuple[bool, str]:
            try:
                return await asyncio.wait_for(check(), self.check_timeout)
            except asyncio.TimeoutError:
                return False, "timed out"
            except Exception as exc:  # a failing check is a result to report, not a crash
                # The exception's text (addresses, paths, a driver's message) goes to the log,
                # not to whoever can reach /ready; once per distinct failure, not every probe.
                text = f"{exc.__class__.__name__}: {exc}"
                if self._last_failure.get(name) != text:
                    self._last_failure[name] = text
                    log.warning("readiness check %s failed", name, exc_info=True)
                return False, f"failed ({exc.__class__.__name__}); see the service log"

        names = list(self.ready_checks)
        results = await asyncio.gather(*(one(n, self.ready_checks[n]) for n in names))
        for name, (ok, _) in zip(names, results, strict=True):
            if ok:
                self._last_failure.pop(name, None)
        return dict(zip(names, results, strict=True))

    def collect_details(self) -> dict[str, Any]:
        """Every details provider's fields; a failing provider is logged and left out."""
        details: dict[str, Any] = {}
        for provider in self.details:
            try:
                details.update(provider())
            except Exception:  # /health must answer even if one provider breaks
                log.exception("health details provider %s failed", getattr(provider, "__qualname__", provider))
        return details


class HealthServer:
    """aiohttp app on ``host:port``; ``start()``/``stop()``; stop may be called twice."""

    def __init__(
        self,
        state: HealthState,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry = REGISTRY,
        metrics_token: str | None = None,
        ssl_context: Any = None,
        memory_debug: bool = False,
    ) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._registry = registry
        self._metrics_token = metrics_token
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        # MEMORY_DEBUG: tracemalloc from start, top growing allocation sites on /debug/memory.
        self._allocations = AllocationTracker() if memory_debug else None

    @classmethod
    def for_service(cls, state: HealthState, settings: CommonSettings, ssl_context: Any = None) -> HealthServer:
        """The server a service mounts: its host and health port, TLS and metrics token."""
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        return cls(state, settings.host, settings.health_port, ssl_context=ssl_context, metrics_token=token,
                   memory_debug=settings.memory_debug)

    def _app(self) -> web.Application:
        app = web.Application()
        # on_response_prepare covers every answer, errors and 404s included.
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        if self._allocations is not None:
            app.router.add_get("/debug/memory", self._memory)
        return app

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)
        if self._ssl is not None:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"

    async def _health(self, request: web.Request) -> web.Response:
        details = self.state.collect_details()
        body = {
            "status": "degraded" if self.state.degraded else "ok",
            "service": self.state.service,
            "instance": self.state.instance,
            "uptime_seconds": round(time.time() - self.state.started_at, 1),
            "rss_bytes": rss_bytes(),
            "reasons": dict(self.state.degraded),
            "details": details,
        }
        return web.json_response(body)

    async def _ready(self, request: web.Request) -> web.Response:
        results = await self.state.run_checks()
        ready = all(ok for ok, _ in results.values())
        body = {
            "ready": ready,
            "service": self.state.service,
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in results.items()},
        }
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._metrics_token is not None and not bearer_matches(
            request.headers.get("Authorization"), self._metrics_token
        ):
            raise web.HTTPUnauthorized(text="metrics need a bearer token", headers={"WWW-Authenticate": "Bearer"})
        body = generate_latest(self._registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _memory(self, request: web.Request) -> web.Response:
        """Top growing allocation sites since the last call (behind the metrics token);
        ``?trim=1`` also returns free heap memory to the system and says how much RSS fell."""
        assert self._allocations is not None
        if self._metrics_token is not None and not bearer_matches(
            request.headers.get("Authorization"), self._metrics_token
        ):
            raise web.HTTPUnauthorized(text="needs the metrics token", headers={"WWW-Authenticate": "Bearer"})
        try:
            top = max(1, min(200, int(request.query.get("top", "25"))))
        except ValueError:
            raise web.HTTPBadRequest(text="top must be an integer") from None
        # A snapshot of a big heap takes a while: off the event loop.
        trim = request.query.get("trim", "") in ("1", "true")
        report = await asyncio.to_thread(self._allocations.report, top, trim=trim)
        for site in report["since_last"][:10]:
            log.info("memory since last: %+d B %+d blocks %s", site["size_diff"], site["count_diff"], site["site"])
        return web.json_response(report)

    async def start(self) -> None:
        if self._allocations is not None:
            self._allocations.start()
            log.warning("MEMORY_DEBUG is on: tracemalloc traces every allocation (slow); /debug/memory")
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False,
                                    shutdown_timeout=3.0)  # a check stuck on Redis must not hold a stop
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        if self.port == 0:  # an ephemeral port was asked for: report the real one
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        log.info("health server on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._allocations is not None:
            self._allocations.stop()
