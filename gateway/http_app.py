"""The public port (5026) as one aiohttp application: the WebSocket, the page and REST.

websockets' server answers only GET handshakes, so uploads (POST) and deletions could not share
its port; aiohttp serves all of it on one listener. What every answer gets, here and nowhere
else:

- the security headers (``common.health.SECURITY_HEADERS``; a route may set its own
  ``Content-Security-Policy`` or ``Cache-Control``, which are kept), and no ``Server`` header;
- the per-IP lockout after failed logins, and a per-IP request rate for plain HTTP (the
  WebSocket handshake keeps its own connection rate, in :class:`HandshakeGuard`);
- REST errors as ``{"error": {"code", "message"}}``; an unexpected exception is logged with its
  traceback and answered 500 without its text.

Features (the page, transcripts, the OpenAI-compatible API) are modules in ``gateway.routes``,
each a ``setup(app)`` that adds routes and may replace :data:`INDEX`, what ``GET /`` answers
when it is not a WebSocket upgrade. The WebSocket itself answers on any path, as it always has.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from common.health import SECURITY_HEADERS
from gateway.client_ip import client_ip as forwarded_client_ip
from gateway.context import GatewayContext
from gateway.http_errors import json_error
from gateway.limits import IpRateLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CTX: web.AppKey[GatewayContext] = web.AppKey("ctx", GatewayContext)
INDEX: web.AppKey[Handler] = web.AppKey("index", Callable)  # type: ignore[arg-type]
OPENAPI_PATHS: web.AppKey[dict[str, Any]] = web.AppKey("openapi_paths", dict)
HTTP_LIMITER: web.AppKey[IpRateLimiter] = web.AppKey("http_limiter", IpRateLimiter)

OPENAPI_INFO = {"title": "speech-pipeline gateway", "version": "1"}


def client_ip(request: web.Request) -> str:
    """The client's address as the limits see it: the peer, or behind a proxy named in
    TRUSTED_PROXIES the address that proxy forwarded (see :mod:`gateway.client_ip`)."""
    trusted = request.app[CTX].settings.trusted_proxies
    return forwarded_client_ip(request.remote, request.headers, trusted) or "unknown"


def is_websocket_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _plain_index(request: web.Request) -> web.StreamResponse:
    return web.Response(text="speech-pipeline gateway: open a WebSocket on this address\n")


async def _openapi(request: web.Request) -> web.StreamResponse:
    doc = {"openapi": "3.1.0", "info": OPENAPI_INFO, "paths": request.app[OPENAPI_PATHS]}
    return web.json_response(doc)


@web.middleware
async def _policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Lockout and request rate for plain HTTP, and errors in one shape."""
    ctx = request.app[CTX]
    if not is_websocket_upgrade(request):  # the handshake applies its own policy
        ip = client_ip(request)
        refusal = ctx.guard.failures.check(ip) or request.app[HTTP_LIMITER].check(ip)
        if refusal is not None:
            kind = web.HTTPUnauthorized if refusal.http_status == 401 else web.HTTPTooManyRequests
            raise json_error(kind, refusal.code, refusal.message, headers=refusal.retry_after_header())
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        # aiohttp's own answers (404, 405, 413...) in the one error shape, with their headers.
        code = exc.reason.lower().replace(" ", "_")
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
        return web.json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status,
                                 headers=kept)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        raise json_error(web.HTTPInternalServerError, "internal_error", "the gateway failed; see its log") from None


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.pop("Server", None)


def build_app(ctx: GatewayContext, websocket: Handler,
              features: tuple[Callable[[web.Application], None], ...] | None = None) -> web.Application:
    """The application for the public port; ``websocket`` handles an upgrade on any path."""
    if features is None:
        from gateway.routes import FEATURES

        features = FEATURES
    app = web.Application(middlewares=[_policy], client_max_size=ctx.settings.max_frame_bytes)
    app[CTX] = ctx
    app[INDEX] = _plain_index
    app[OPENAPI_PATHS] = {}
    app[HTTP_LIMITER] = IpRateLimiter(ctx.settings.http_requests_per_ip_per_minute)
    app.on_response_prepare.append(_headers)
    for setup in features:
        setup(app)
    app.router.add_get("/v1/openapi.json", _openapi)

    async def root(request: web.Request) -> web.StreamResponse:
        if is_websocket_upgrade(request):
            return await websocket(request)
        if request.path == "/":
            return await request.app[INDEX](request)
        raise web.HTTPNotFound()

    # Last, so every feature's route wins over the catch-all.
    app.router.add_get("/{tail:.*}", root)
    return app

