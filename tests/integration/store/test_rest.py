"""`/v1/sessions...` on a real gateway (in-process, free port, auth on), reading the database
the store writes, on SQLite and PostgreSQL: ownership, exports, pages, delete, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common import subtitles
from common.auth import mint_token
from common.embedded_redis import EmbeddedRedis
from common.health import SECURITY_HEADERS
from common.settings import GatewaySettings, StoreSettings
from gateway.service import GatewayService
from tests.integration.store.records import final, session, translation
from transcript_store.writer import TranscriptWriter

SECRET = "rest-test-secret-0123456789abcdefghij"


@pytest.fixture
async def gateway(store_settings: StoreSettings, redis_server: EmbeddedRedis) -> AsyncIterator[str]:
    settings = GatewaySettings(
        redis_url=redis_server.url, gateway_port=0, health_port=0, jwt_secret=SECRET,  # type: ignore[arg-type]
        database_url=store_settings.database_url, data_dir=store_settings.data_dir,
    )
    service = GatewayService(settings)
    await service.startup()
    try:
        yield f"http://127.0.0.1:{service.port}"
    finally:
        await service.shutdown()


def _auth(subject: str) -> dict[str, str]:
    settings = GatewaySettings(jwt_secret=SECRET)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {mint_token(settings, subject, 600)}"}


async def _get(http: aiohttp.ClientSession, url: str, subject: str | None) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.get(url, headers=_auth(subject) if subject else {}) as r:
        body = await (r.json() if r.content_type == "application/json" else r.text())
        return r.status, body, r


async def test_a_subject_reads_exports_and_deletes_only_its_own(engine: AsyncEngine, gateway: str) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    await writer.write([
        session("alice-1", "alice", created_at=100.0), *(final("alice-1", i) for i in (2, 0, 1)),
        translation("alice-1", 0), translation("alice-1", 2),
        session("bob-1", "bob", created_at=200.0), final("bob-1", 0, "bob's secret"),
    ])
    async with aiohttp.ClientSession() as http:
        status, body, r = await _get(http, f"{gateway}/v1/sessions", "alice")
        assert status == 200 and [s["session_id"] for s in body["sessions"]] == ["alice-1"]
        assert body["next_cursor"] is None
        for name, value in SECURITY_HEADERS.items():
            assert r.headers[name] == value
        summary = body["sessions"][0]
        assert summary["segments"] == 3 and summary["translations"] == ["de"] and "subject" not in summary

        status, body, _ = await _get(http, f"{gateway}/v1/sessions/alice-1/transcript", "alice")
        assert status == 200
        assert [s["utterance_index"] for s in body["segments"]] == [0, 1, 2]
        assert body["segments"][0]["worker"] == "stt-test-0" and body["segments"][0]["translation"] is None

        status, body, _ = await _get(http, f"{gateway}/v1/sessions/alice-1/transcript?translation=de", "alice")
        assert [s["translation"] for s in body["segments"]] == ["[de] utterance 0", None, "[de] utterance 2"]

        status, srt, r = await _get(http, f"{gateway}/v1/sessions/alice-1/transcript?format=srt", "alice")
        assert status == 200 and r.headers["Content-Type"].startswith("application/x-subrip")
        assert 'filename="alice-1.srt"' in r.headers["Content-Disposition"]
        assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nutterance 0 of alice-1\n")
        assert [c.text for c in subtitles.parse_srt(srt)] == [f"utterance {i} of alice-1" for i in range(3)]

        status, vtt, r = await _get(http, f"{gateway}/v1/sessions/alice-1/transcript?format=vtt&translation=de",
                                    "alice")
        assert status == 200 and r.headers["Content-Type"].startswith("text/vtt")
        assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\n[de] utterance 0\n")
        status, txt, _ = await _get(http, f"{gateway}/v1/sessions/alice-1/transcript?format=txt", "alice")
        assert txt == "utterance 0 of alice-1\nutterance 1 of alice-1\nutterance 2 of alice-1\n"

        # Bob's session does not exist as far as alice can tell: 404 on every route.
        for path in ("/v1/sessions/bob-1", "/v1/sessions/bob-1/transcript?format=txt"):
            status, body, _ = await _get(http, gateway + path, "alice")
            assert status == 404 and body["error"]["code"] == "session_not_found", path
        async with http.delete(f"{gateway}/v1/sessions/bob-1", headers=_auth("alice")) as r:
            assert r.status == 404
        status, body, _ = await _get(http, f"{gateway}/v1/sessions/bob-1/transcript?format=txt", "bob")
        assert status == 200 and body == "bob's secret\n"

        async with http.delete(f"{gateway}/v1/sessions/alice-1", headers=_auth("alice")) as r:
            assert r.status == 204
        status, _, _ = await _get(http, f"{gateway}/v1/sessions/alice-1", "alice")
        assert status == 404


async def test_pages_bad_input_and_no_token(engine: AsyncEngine, gateway: str) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    await writer.write([session(f"s{i}", "carol", created_at=float(i)) for i in range(5)])
    async with aiohttp.ClientSession() as http:
        seen: list[str] = []
        url = f"{gateway}/v1/sessions?limit=2"
        while True:
            status, body, _ = await _get(http, url, "carol")
            assert status == 200
            seen += [s["session_id"] for s in body["sessions"]]
            if not body["next_cursor"]:
                break
            url = f"{gateway}/v1/sessions?limit=2&cursor={body['next_cursor']}"
        assert seen == ["s4", "s3", "s2", "s1", "s0"]

        for query, param in (("limit=0", "limit"), ("limit=x", "limit"), ("limit=500", "limit"),
                             ("cursor=garbage", "cursor")):
            status, body, _ = await _get(http, f"{gateway}/v1/sessions?{query}", "carol")
            assert status == 400 and body["error"]["param"] == param, query
        for query, param in (("format=docx", "format"), ("translation=../../etc", "translation")):
            status, body, _ = await _get(http, f"{gateway}/v1/sessions/s1/transcript?{query}", "carol")
            assert status == 400 and body["error"]["param"] == param, query

        status, body, r = await _get(http, f"{gateway}/v1/sessions", None)
        assert status == 401 and body["error"]["code"] == "token_missing"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")

        status, doc, _ = await _get(http, f"{gateway}/v1/openapi.json", None)
        assert status == 200
        ours = {"/v1/sessions", "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/transcript"}
        assert ours <= set(doc["paths"])
        assert "delete" in doc["paths"]["/v1/sessions/{session_id}"]


async def test_no_database_yet_answers_503(bare_engine: AsyncEngine, gateway: str) -> None:
    """The store has never run: nothing is migrated, and the gateway says so instead of failing."""
    async with aiohttp.ClientSession() as http:
        status, body, r = await _get(http, f"{gateway}/v1/sessions", "alice")
        assert status == 503 and body["error"]["code"] == "transcripts_unavailable"
        assert r.headers["Retry-After"] == "5"


async def test_with_auth_off_every_session_is_the_anonymous_owners(
    engine: AsyncEngine, store_settings: StoreSettings, redis_server: EmbeddedRedis
) -> None:
    settings = GatewaySettings(
        redis_url=redis_server.url, gateway_port=0, health_port=0,  # type: ignore[arg-type]
        database_url=store_settings.database_url, data_dir=store_settings.data_dir,
    )
    service = GatewayService(settings)
    await service.startup()
    try:
        await TranscriptWriter(engine, clock=lambda: 5000.0).write([session("anon", None), final("anon", 0)])
        async with aiohttp.ClientSession() as http:
            status, body, _ = await _get(http, f"http://127.0.0.1:{service.port}/v1/sessions", None)
            assert status == 200 and [s["session_id"] for s in body["sessions"]] == ["anon"]
            async with http.delete(f"http://127.0.0.1:{service.port}/v1/sessions/anon") as r:
                assert r.status == 204
    finally:
        await service.shutdown()
