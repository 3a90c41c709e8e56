"""A new connection's entry: auth (the token from the handshake or a first ``auth`` message)
and a place in the subject's session count; refused ones are told why and closed with 1008."""

from __future__ import annotations

import asyncio
import contextlib

from common.auth import AuthError, AuthLease, token_from_auth_message
from gateway import metrics, protocol
from gateway.client_socket import ClientSocket, SocketClosed
from gateway.context import GatewayContext
from gateway.limits import Admission


async def authenticate(ctx: GatewayContext, ws: ClientSocket, admission: Admission, slot: str) -> AuthLease | None:
    """The session's lease (None with auth off); raises :class:`Refused` once the client has
    been told and the socket closed."""
    if not ctx.guard.auth_enabled:
        return None
    claims = admission.claims
    try:
        if admission.deferred:
            try:
                first = await asyncio.wait_for(ws.recv(), ctx.settings.auth_timeout_seconds)
            except asyncio.TimeoutError:
                raise AuthError("token_missing", "send {type: auth, token} first") from None
            claims = ctx.guard.verify(ws.ip, token_from_auth_message(first))
    except AuthError as exc:
        await refuse(ws, exc.code, exc.message)
    assert claims is not None
    refusal = await ctx.subject_sessions.acquire(claims.subject, slot)
    if refusal is not None:
        await refuse(ws, refusal.code, refusal.message)
    return AuthLease(claims, ctx.settings.token_expiry_grace_seconds)


class Refused(Exception):
    """The connection was refused before its session started."""


async def refuse(ws: ClientSocket, code: str, message: str) -> None:
    """An error frame, then close 1008 with the code."""
    metrics.REFUSED.labels(code).inc()
    with contextlib.suppress(SocketClosed):
        await ws.send(protocol.Error(code=code, message=message).to_json())
        await ws.close(1008, code)
    raise Refused(code)
