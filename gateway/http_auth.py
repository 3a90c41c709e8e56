"""Who is asking, for REST routes on the public port: the same tokens as the WebSocket.

With auth on, a request carries ``Authorization: Bearer <jwt>`` (how the OpenAI SDK sends
``api_key``) or ``?token=``; it is verified by the gateway's :class:`HandshakeGuard`, so a bad
token counts towards the IP's lockout exactly like a bad WebSocket handshake. With auth off
every request belongs to one anonymous owner (``None``).
"""

from __future__ import annotations

from aiohttp import web

from common.auth import AuthError, extract_token
from gateway.http_errors import json_error
from gateway.limits import HandshakeGuard


def request_subject(request: web.Request, guard: HandshakeGuard, ip: str) -> str | None:
    """The token's subject (auth on), or None (auth off). Raises a 401 JSON answer."""
    if not guard.auth_enabled:
        return None
    token = extract_token(request.headers, request.path_qs)
    if token is None:
        raise json_error(web.HTTPUnauthorized, "token_missing", "send Authorization: Bearer <token>",
                         headers={"WWW-Authenticate": 'Bearer error="token_missing"'})
    try:
        return guard.verify(ip, token).subject
    except AuthError as exc:
        raise json_error(web.HTTPUnauthorized, exc.code, exc.message,
                         headers={"WWW-Authenticate": f'Bearer error="{exc.code}"'}) from None
