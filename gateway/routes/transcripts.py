"""Transcripts on the public port: ``/v1/sessions`` (list, one, transcript export, delete).

The gateway reads the transcript database directly through
:class:`transcript_store.repository.TranscriptRepository` (read-only queries and the delete),
on the same ``DATABASE_URL`` as the store: one source of truth, no second service to call.
With auth on, a caller sees and deletes only sessions of its token subject; any other
session answers 404, exactly like one that does not exist. With auth off every session
belongs to the one anonymous owner. The database unreachable or not yet migrated (the store
has never started) answers 503 ``transcripts_unavailable``.

Exports: ``format=json`` (default; every field of every final, and its translation if
``translation=LANG``), or ``txt`` / ``srt`` / ``vtt`` (written by :mod:`common.subtitles`,
the same code as the GUI's "Save transcript"), of the finals or, with ``translation=LANG``,
of their translations.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from common import subtitles
from gateway.http_app import CTX, OPENAPI_PATHS, client_ip
from gateway.http_auth import request_subject
from gateway.http_errors import json_error
from transcript_store.db import engine_from_settings
from transcript_store.repository import ANYONE, BadCursor, Owner, TranscriptRepository

log = logging.getLogger(__name__)

REPOSITORY: web.AppKey[TranscriptRepository] = web.AppKey("transcripts", TranscriptRepository)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
FORMATS = ("json", *subtitles.FORMATS)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _repository(request: web.Request) -> TranscriptRepository:
    return request.app[REPOSITORY]


def _owner(request: web.Request) -> Owner:
    subject = request_subject(request, request.app[CTX].guard, client_ip(request))
    return ANYONE if subject is None else subject


def _bad(name: str, message: str) -> web.HTTPException:
    return json_error(web.HTTPBadRequest, "invalid_parameter", message, param=name)


def _not_found() -> web.HTTPException:
    return json_error(web.HTTPNotFound, "session_not_found", "no such session")


def _unavailable(exc: BaseException) -> web.HTTPException:
    log.warning("transcript database unavailable: %s", exc.__class__.__name__, exc_info=True)
    return json_error(web.HTTPServiceUnavailable, "transcripts_unavailable",
                      "the transcript database is not reachable or not migrated yet (is the store running?)",
                      headers={"Retry-After": "5"})


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["session_id"]
    if not _SESSION_ID.match(session_id):
        raise _not_found()
    return session_id


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


async def list_sessions(request: web.Request) -> web.StreamResponse:
    owner = _owner(request)
    limit = _limit(request)
    try:
        page = await _repository(request).list_sessions(owner, limit=limit, cursor=request.query.get("cursor"))
    except BadCursor:
        raise _bad("cursor", "cursor is not one this service handed out") from None
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from None
    return web.json_response({"sessions": [s.to_dict() for s in page.sessions], "next_cursor": page.next_cursor})


async def get_session(request: web.Request) -> web.StreamResponse:
    owner = _owner(request)
    session_id = _session_id(request)
    try:
        found = await _repository(request).get_session(owner, session_id)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from None
    if found is None:
        raise _not_found()
    return web.json_response(found.to_dict())


async def get_transcript(request: web.Request) -> web.StreamResponse:
    owner = _owner(request)
    session_id = _session_id(request)
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise _bad("format", f"format must be one of {', '.join(FORMATS)}")
    translation = request.query.get("translation") or None
    if translation is not None and not _LANGUAGE.match(translation):
        raise _bad("translation", "translation must be a language code such as de or pt-BR")
    try:
        transcript = await _repository(request).get_transcript(owner, session_id, translation=translation)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from None
    if transcript is None:
        raise _not_found()
    if fmt == "json":
        return web.json_response({
            "session": transcript.session.to_dict(),
            "translation": translation,
            "segments": [s.to_dict() for s in transcript.segments],
        })
    text_format = cast(subtitles.TextFormat, fmt)
    body = subtitles.render(transcript.cues(translated=translation is not None), text_format)
    suffix = f".{translation}" if translation else ""
    return web.Response(
        text=body,
        headers={
            "Content-Type": subtitles.MEDIA_TYPES[text_format],
            "Content-Disposition": f'attachment; filename="{session_id}{suffix}.{fmt}"',
        },
    )


async def delete_session(request: web.Request) -> web.StreamResponse:
    owner = _owner(request)
    session_id = _session_id(request)
    try:
        deleted = await _repository(request).delete_session(owner, session_id, now=time.time())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from None
    if not deleted:
        raise _not_found()
    return web.Response(status=204)


async def _database(app: web.Application) -> AsyncIterator[None]:
    """One engine per gateway, opened with the app and disposed with it."""
    # A reader: it neither creates the data directory nor the schema (the store does both).
    engine = engine_from_settings(app[CTX].settings, create_dir=False)
    app[REPOSITORY] = TranscriptRepository(engine)
    try:
        yield
    finally:
        await engine.dispose()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_database)
    app.router.add_get("/v1/sessions", list_sessions)
    app.router.add_get("/v1/sessions/{session_id}", get_session)
    app.router.add_delete("/v1/sessions/{session_id}", delete_session)
    app.router.add_get("/v1/sessions/{session_id}/transcript", get_transcript)
    app[OPENAPI_PATHS].update(OPENAPI)


_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "param": {"type": "string"}}}},
}
_ERRORS: dict[str, Any] = {
    "401": {"description": "auth on (JWT_SECRET), and no valid `Authorization: Bearer` token or `?token=`",
            "content": {"application/json": {"schema": _ERROR}}},
    "404": {"description": "no such session, or not the caller's", "content": {"application/json": {"schema": _ERROR}}},
    "503": {"description": "transcript database unavailable", "content": {"application/json": {"schema": _ERROR}}},
}
_SESSION_ID_PARAM = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SESSION = {
    "type": "object",
    "properties": {
        "session_id": {"type": "string"},
        "created_at": {"type": "number", "description": "epoch seconds"},
        "updated_at": {"type": "number", "description": "epoch seconds of the last final stored"},
        "source_language": {"type": ["string", "null"]},
        "target_language": {"type": ["string", "null"]},
        "segments": {"type": "integer"},
        "duration_seconds": {"type": "number"},
        "translations": {"type": "array", "items": {"type": "string"}},
    },
}
_SEGMENT = {
    "type": "object",
    "properties": {
        "segment_id": {"type": "string"}, "utterance_index": {"type": "integer"}, "text": {"type": "string"},
        "language": {"type": ["string", "null"]}, "language_probability": {"type": ["number", "null"]},
        "start": {"type": "number"}, "end": {"type": "number"},
        "words": {"type": ["array", "null"], "items": {"type": "object"}}, "worker": {"type": "string"},
        "translation": {"type": ["string", "null"]},
    },
}
OPENAPI: dict[str, Any] = {
    "/v1/sessions": {
        "get": {
            "summary": "The caller's sessions, newest first",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                                             "default": DEFAULT_LIMIT}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "next_cursor of the previous page"},
            ],
            "responses": {
                "200": {"description": "a page of sessions", "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"sessions": {"type": "array", "items": _SESSION},
                                   "next_cursor": {"type": ["string", "null"]}},
                }}}},
                "400": {"description": "bad limit or cursor", "content": {"application/json": {"schema": _ERROR}}},
                **_ERRORS,
            },
        },
    },
    "/v1/sessions/{session_id}": {
        "get": {
            "summary": "One session",
            "parameters": [_SESSION_ID_PARAM],
            "responses": {"200": {"description": "the session", "content": {"application/json": {"schema": _SESSION}}},
                          **_ERRORS},
        },
        "delete": {
            "summary": "Delete a session with its transcript and translations",
            "parameters": [_SESSION_ID_PARAM],
            "responses": {"204": {"description": "deleted"}, **_ERRORS},
        },
    },
    "/v1/sessions/{session_id}/transcript": {
        "get": {
            "summary": "The session's finals in order, as JSON, plain text, SRT or WebVTT",
            "parameters": [
                _SESSION_ID_PARAM,
                {"name": "format", "in": "query",
                 "schema": {"type": "string", "enum": list(FORMATS), "default": "json"}},
                {"name": "translation", "in": "query", "schema": {"type": "string"},
                 "description": "a target language: JSON adds each final's translation; txt/srt/vtt export it"},
            ],
            "responses": {
                "200": {"description": "the transcript", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "session": _SESSION, "translation": {"type": ["string", "null"]},
                        "segments": {"type": "array", "items": _SEGMENT}}}},
                    "text/plain": {"schema": {"type": "string"}},
                    "application/x-subrip": {"schema": {"type": "string"}},
                    "text/vtt": {"schema": {"type": "string"}},
                }},
                "400": {"description": "bad format or language", "content": {"application/json": {"schema": _ERROR}}},
                **_ERRORS,
            },
        },
    },
}
