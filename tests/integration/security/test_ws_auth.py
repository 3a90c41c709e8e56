"""JWT on a real WebSocket handshake (websockets 17 ``process_request``), the first-message
``auth`` path, refresh, expiry with grace, sessions per subject, lockout, and no token or secret
in the captured logs. The small server here is the wiring the gateway uses, kept minimal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from common.auth import AuthError, AuthLease, mint_token, token_from_auth_message
from common.security_settings import SecuritySettings
from gateway.limits import Admission, HandshakeGuard, SubjectSessions, auth_refusal
from speech_client.protocol import Auth, Ping, Pong, Ready, parse_server_message
from tests.speech_messages import error as error_message
from tests.speech_messages import ready


def make_settings(**values: Any) -> SecuritySettings:
    """Settings from keyword values as the environment would give them (strings for secrets)."""
    return SecuritySettings(**values)


pytestmark = pytest.mark.integration
log = logging.getLogger("tests.ws_auth")


@dataclass
class MiniGateway:
    """process_request admits or refuses; the handler finishes auth and holds the lease."""

    settings: SecuritySettings
    redis: aioredis.Redis
    guard: HandshakeGuard = field(init=False)
    sessions: SubjectSessions = field(init=False)
    admissions: dict[ServerConnection, Admission] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.guard = HandshakeGuard.from_settings(self.settings)
        self.sessions = SubjectSessions(self.redis, self.settings.sessions_per_subject)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        admission = self.guard.admit(connection.remote_address[0], request.headers, request.path)
        refusal = admission.refusal
        if refusal is not None:
            log.info("handshake refused: %s", refusal.code)
            response = connection.respond(refusal.http_status, f"{refusal.code}: {refusal.message}\n")
            for name, value in refusal.retry_after_header().items():
                response.headers[name] = value
            if refusal.http_status == 401:
                response.headers["WWW-Authenticate"] = f'Bearer error="{refusal.code}"'
            return response
        self.admissions[connection] = admission
        return None

    async def handler(self, ws: ServerConnection) -> None:
        admission = self.admissions.pop(ws, Admission())
        ip = ws.remote_address[0]
        claims = admission.claims
        if admission.deferred:
            try:
                first = await asyncio.wait_for(ws.recv(), self.settings.auth_timeout_seconds)
                claims = self.guard.verify(ip, token_from_auth_message(first))
            except (AuthError, TimeoutError) as exc:
                error = exc if isinstance(exc, AuthError) else AuthError("token_missing", "no auth message in time")
                await self._refuse(ws, error.code, error.message)
                return
        assert claims is not None
        session_id = uuid.uuid4().hex
        too_many = await self.sessions.acquire(claims.subject, session_id)
        if too_many is not None:
            await self._refuse(ws, too_many.code, too_many.message)
            return
        lease = AuthLease(claims, self.settings.token_expiry_grace_seconds)
        log.info("session %s for %s", session_id[:8], claims.subject)
        try:
            await ws.send(ready(session_id).to_json())
            while True:
                state = lease.poll(time.time())
                if state == "expired":
                    await ws.send(error_message("token_expired", "send a fresh token in an auth message").to_json())
                elif state == "close":
                    await ws.close(1008, "token_expired")
                    return
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.05)
                except TimeoutError:
                    continue
                token = token_from_auth_message(message)
                if token is None:
                    # The rest of the protocol, as far as these tests need it: ping -> pong.
                    if isinstance(message, str) and json.loads(message).get("type") == "ping":
                        await ws.send(Pong().to_json())
                    continue
                try:
                    # Like the real gateway, an accepted refresh is not answered.
                    lease.refresh(self.guard.verify(ip, token))
                except AuthError as exc:
                    await self._refuse(ws, exc.code, exc.message)
                    return
        except ConnectionClosed:
            pass
        finally:
            await self.sessions.release(claims.subject, session_id)

    async def _refuse(self, ws: ServerConnection, code: str, message: str) -> None:
        log.info("session refused: %s", code)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(error_message(code, message).to_json())
            await ws.close(auth_refusal(AuthError(code, message)).close_code, code)


@pytest.fixture
def settings(secret: str) -> SecuritySettings:
    return make_settings(jwt_secret=secret, jwt_audience="speech", token_expiry_grace_seconds=0.5,
                            auth_failures_before_lockout=3, sessions_per_subject=2, auth_timeout_seconds=1.0)


@pytest.fixture
async def url(settings: SecuritySettings, redis_client: aioredis.Redis) -> AsyncIterator[str]:
    gateway = MiniGateway(settings, redis_client)
    async with serve(gateway.handler, "127.0.0.1", 0, process_request=gateway.process_request) as server:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"


async def _status(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=5, **kwargs):
            pass
    return info.value.response.status_code


async def _ready(ws: ClientConnection) -> Ready:
    message = parse_server_message(await ws.recv())
    assert isinstance(message, Ready), message
    return message


async def _accepted(ws: ClientConnection) -> None:
    """Nothing but a pong answers a ping: whatever was sent before it was accepted."""
    await ws.send(Ping().to_json())
    assert isinstance(parse_server_message(await ws.recv()), Pong)


async def test_bad_tokens_get_401_in_the_handshake(url: str, settings: SecuritySettings, secret: str) -> None:
    now = int(time.time())
    expired = mint_token(settings, "a", 60, now=now - 3600)
    forged = jwt.encode({"sub": "a", "exp": now + 60, "aud": "speech"}, "x" * 40, algorithm="HS256")
    unsigned = jwt.encode({"sub": "a", "exp": now + 60, "aud": "speech"}, None, algorithm="none")  # type: ignore[arg-type]
    for token in (expired, forged):
        status = await _status(url, additional_headers={"Authorization": f"Bearer {token}"})
        assert status == 401
    assert await _status(f"{url}?token={unsigned}") == 401
    # Three failures from this address: it is locked out, even with a good token.
    good = mint_token(settings, "a", 60)
    assert await _status(url, additional_headers={"Authorization": f"Bearer {good}"}) == 429


async def test_header_and_query_tokens_are_accepted(url: str, settings: SecuritySettings) -> None:
    token = mint_token(settings, "alice", 60)
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await _ready(ws)
    async with connect(f"{url}?token={token}") as ws:
        await _ready(ws)


async def test_first_message_auth_and_its_refusal(url: str, settings: SecuritySettings) -> None:
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": mint_token(settings, "bob", 60)}))
        await _ready(ws)
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "config"}))
        error = json.loads(await ws.recv())
        assert error["code"] == "token_missing"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008 and ws.close_reason == "token_missing"
    async with connect(url) as ws:  # silence: refused after AUTH_TIMEOUT_SECONDS
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1008


async def test_refresh_extends_and_expiry_closes_after_grace(url: str, settings: SecuritySettings) -> None:
    async with connect(url, additional_headers={"Authorization": f"Bearer {mint_token(settings, 'c', 2)}"}) as ws:
        await _ready(ws)
        await ws.send(Auth(token=mint_token(settings, "c", 60)).to_json())
        await _accepted(ws)
        await ws.send(json.dumps({"type": "auth", "token": mint_token(settings, "someone-else", 60)}))
        assert json.loads(await ws.recv())["code"] == "token_subject_changed"
    short = mint_token(settings, "d", 60, exp=int(time.time()) + 1)
    async with connect(url, additional_headers={"Authorization": f"Bearer {short}"}) as ws:
        await _ready(ws)
        started = time.monotonic()
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error == {"type": "error", "code": "token_expired", "message": error["message"]}
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1008 and ws.close_reason == "token_expired"
        assert time.monotonic() - started < 8


async def test_sessions_per_subject(url: str, settings: SecuritySettings) -> None:
    headers = {"Authorization": f"Bearer {mint_token(settings, 'erin', 60)}"}
    async with connect(url, additional_headers=headers) as one, connect(url, additional_headers=headers) as two:
        await _ready(one)
        await _ready(two)
        async with connect(url, additional_headers=headers) as three:
            error = json.loads(await three.recv())
            assert error["code"] == "too_many_sessions_for_subject"
    async with connect(url, additional_headers=headers) as again:  # the slots were released
        await _ready(again)


async def test_no_token_or_secret_in_logs(
    url: str, settings: SecuritySettings, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tests")
    caplog.set_level(logging.DEBUG, logger="common")
    caplog.set_level(logging.DEBUG, logger="gateway")
    caplog.set_level(logging.INFO, logger="websockets")
    good = mint_token(settings, "fay", 60)
    bad = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    async with connect(url, additional_headers={"Authorization": f"Bearer {good}"}) as ws:
        await _ready(ws)
        await ws.send(json.dumps({"type": "auth", "token": bad}))
        assert json.loads(await ws.recv())["code"] == "token_invalid"
    assert await _status(f"{url}?token={bad}") == 401
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "session refused: token_invalid" in caplog.text
    for needle in (secret, good, bad, good.split(".")[2]):
        assert needle not in text


async def test_websockets_debug_lines_leak_tokens_unless_redacted(
    url: str, settings: SecuritySettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Why the log formatter needs ``redact_tokens``: websockets at DEBUG prints headers and
    request lines; the redacted text holds no token."""
    from common.logs import redact_tokens

    caplog.set_level(logging.DEBUG, logger="websockets")
    token = mint_token(settings, "gus", 60)
    async with connect(f"{url}?token={token}", additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await _ready(ws)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await _accepted(ws)
    formatter = logging.Formatter("%(name)s %(message)s")
    lines = [formatter.format(r) for r in caplog.records]
    assert any(token in line for line in lines)  # raw: leaked
    assert not any(token in redact_tokens(line) for line in lines)
