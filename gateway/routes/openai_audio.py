"""OpenAI-compatible ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``.

Tools written for OpenAI's audio API (the ``openai`` SDKs, subtitle editors, note takers) work
against this gateway unchanged: ``OpenAI(base_url="http://HOST:5026/v1", api_key=TOKEN)``.
The request is OpenAI's multipart form; the file may be any container FFmpeg reads. The audio
is transcribed by the same STT workers as live sessions (``gateway.uploads``), after them in
priority. ``translations`` is Whisper's own translation into English.

What differs from OpenAI, on purpose: ``model`` is accepted and echoed but the deployment's
model answers; ``temperature`` is accepted (0-1) but decoding is the workers' beam search with
their fallback; ``language`` in ``verbose_json`` is the ISO 639-1 code; segments carry the
fields the pipeline has (``id``, ``start``, ``end``, ``text``, ``words``), not Whisper's
per-segment log-probabilities. Errors are OpenAI's error JSON with its HTTP statuses: 400
unreadable file or bad field, 401 no valid token (auth on), 413 file too large or too long,
429 rate or audio quota, 503 no STT worker answering.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import BodyPartReader, web

from common import bus
from common.subtitles import Cue, to_srt, to_txt, to_vtt
from gateway.audio_decode import AudioTooLong, UnreadableAudio, decode_to_pcm16k
from gateway.http_app import CTX, OPENAPI_PATHS, client_ip
from gateway.http_auth import request_subject
from gateway.http_errors import JsonHTTPError, json_error
from gateway.limits import Refusal
from gateway.uploads import QuotaRefused, UploadFailed, UploadOptions, UploadRunner, cut_pieces

log = logging.getLogger(__name__)

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
FIELD_LIMIT = 4096  # bytes of any form field other than the file


def _api_error(kind: type[web.HTTPException], message: str, *, code: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> web.HTTPException:
    err_type = "invalid_request_error" if kind.status_code < 500 else "server_error"
    return json_error(kind, code, message, headers=headers, type=err_type, param=param)


@dataclass
class AudioForm:
    file: bytes = b""
    filename: str = ""
    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"
    temperature: float = 0.0
    granularities: list[str] = field(default_factory=list)
    stream: bool = False


async def _read_form(request: web.Request, max_bytes: int) -> AudioForm:
    """The multipart form, streamed: the file is cut off (413) as soon as it passes the limit."""
    if request.content_length is not None and request.content_length > max_bytes + 65536:
        raise _api_error(web.HTTPRequestEntityTooLarge, f"the request is larger than {max_bytes} bytes",
                     code="file_too_large", param="file")
    if not request.content_type.startswith("multipart/"):
        raise _api_error(web.HTTPBadRequest, "send multipart/form-data with a 'file' field", code="invalid_request")
    form = AudioForm()
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "file":
            form.filename = part.filename or ""
            data = bytearray()
            while chunk := await part.read_chunk(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise _api_error(web.HTTPRequestEntityTooLarge, f"the file is larger than {max_bytes} bytes",
                                 code="file_too_large", param="file")
            form.file = bytes(data)
            continue
        raw = await part.read(decode=True)
        if len(raw) > FIELD_LIMIT:
            raise _api_error(web.HTTPBadRequest, f"field {name!r} is too long", code="invalid_value", param=name)
        value = raw.decode("utf-8", "replace").strip()
        _set_field(form, name, value)
    if not form.file:
        raise _api_error(web.HTTPBadRequest, "the 'file' field is missing or empty", code="invalid_file", param="file")
    return form


def _set_field(form: AudioForm, name: str, value: str) -> None:
    if name == "model":
        form.model = value or form.model
    elif name == "language":
        if value and not (2 <= len(value) <= 3 and value.isalpha()):
            raise _api_error(web.HTTPBadRequest, "language must be an ISO 639-1 code", code="invalid_value",
                         param="language")
        form.language = value.lower() or None
    elif name == "prompt":
        form.prompt = value or None
    elif name == "response_format":
        if value not in FORMATS:
            raise _api_error(web.HTTPBadRequest, f"response_format must be one of {', '.join(FORMATS)}",
                         code="invalid_value", param="response_format")
        form.response_format = value
    elif name == "temperature":
        try:
            form.temperature = float(value)
        except ValueError:
            form.temperature = -1.0
        if not 0.0 <= form.temperature <= 1.0:
            raise _api_error(web.HTTPBadRequest, "temperature must be between 0 and 1", code="invalid_value",
                         param="temperature")
    elif name in ("timestamp_granularities[]", "timestamp_granularities"):
        if value not in ("word", "segment"):
            raise _api_error(web.HTTPBadRequest, "timestamp_granularities are 'word' and 'segment'",
                         code="invalid_value", param="timestamp_granularities")
        form.granularities.append(value)
    elif name == "stream":
        form.stream = value.lower() in ("true", "1")
    # Unknown fields are ignored, as OpenAI's newer fields should not break an older server.


def _response(form: AudioForm, task: str, duration: float, finals: list[bus.FinalResult]) -> web.Response:
    cues = [Cue(f.start, f.end, f.text.strip()) for f in finals]
    text = " ".join(c.text for c in cues if c.text)
    fmt = form.response_format
    if fmt == "text":
        return web.Response(text=to_txt([Cue(0, duration, text)]), content_type="text/plain")
    if fmt == "srt":
        return web.Response(text=to_srt(cues), content_type="application/x-subrip")
    if fmt == "vtt":
        return web.Response(text=to_vtt(cues), content_type="text/vtt")
    if fmt == "json":
        return web.json_response({"text": text})
    languages = [f.language for f in finals if f.language]
    body: dict[str, Any] = {
        "task": task,
        "language": max(set(languages), key=languages.count) if languages else (form.language or "en"),
        "duration": round(duration, 3),
        "text": text,
        "segments": [
            {"id": i, "seek": 0, "start": f.start, "end": f.end, "text": f.text.strip(),
             **({"words": [w.model_dump(exclude={"probability"}) for w in f.words]} if f.words else {})}
            for i, f in enumerate(finals) if f.text.strip()
        ],
    }
    if "word" in form.granularities:
        body["words"] = [w.model_dump(exclude={"probability"}) for f in finals for w in (f.words or [])]
    return web.json_response(body)


async def _stream(request: web.Request, runner: UploadRunner, pieces: list[Any]) -> web.StreamResponse:
    """Server-sent events as OpenAI's streaming transcription sends them: a delta per segment,
    then the whole text."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    texts: list[str] = []
    try:
        async for final in runner.run(pieces):
            piece = final.text.strip()
            if not piece:
                continue
            delta = piece if not texts else " " + piece
            texts.append(piece)
            event = {"type": "transcript.text.delta", "delta": delta, "segment": {"start": final.start,
                                                                                  "end": final.end}}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        done = {"type": "transcript.text.done", "text": " ".join(texts)}
        await response.write(f"data: {json.dumps(done)}\n\n".encode())
    except UploadFailed as exc:
        err = {"error": {"message": str(exc), "type": "server_error", "code": "stt_unavailable", "param": None}}
        await response.write(f"event: error\ndata: {json.dumps(err)}\n\n".encode())
    await response.write_eof()
    return response


async def _handle(request: web.Request, task: Literal["transcribe", "translate"]) -> web.StreamResponse:
    ctx = request.app[CTX]
    s = ctx.settings
    ip = client_ip(request)
    try:
        subject = request_subject(request, ctx.guard, ip)
    except JsonHTTPError as exc:  # the same 401, in OpenAI's shape
        code = json.loads(exc.text or "{}").get("error", {}).get("code", "invalid_token")
        raise _api_error(web.HTTPUnauthorized, "a valid token is required (Authorization: Bearer ...)",
                     code=code, headers={"WWW-Authenticate": exc.headers.get("WWW-Authenticate", "Bearer")}) from None
    form = await _read_form(request, s.upload_max_bytes)
    try:
        pcm = await asyncio.to_thread(decode_to_pcm16k, form.file, s.upload_max_seconds)
    except UnreadableAudio as exc:
        raise _api_error(web.HTTPBadRequest, f"the file is not audio we can read: {exc}", code="invalid_file",
                     param="file") from None
    except AudioTooLong as exc:
        raise _api_error(web.HTTPRequestEntityTooLarge, str(exc), code="audio_too_long", param="file") from None
    duration = len(pcm) / 16000
    pieces = await asyncio.to_thread(cut_pieces, pcm, s, ctx.silero)
    charge = None
    if subject is not None:
        async def charge(seconds: float) -> Refusal | None:
            result = await ctx.audio_quota.charge(subject, seconds)
            return result.refusal
    options = UploadOptions(language=form.language, prompt=form.prompt, task=task,
                            word_timestamps="word" in form.granularities)
    runner = UploadRunner(ctx, options, charge=charge)
    log.info("upload: %.1f s of audio in %d pieces (%s, %s)", duration, len(pieces), task, form.response_format)
    if form.stream:
        return await _stream(request, runner, pieces)
    finals: list[bus.FinalResult] = []
    try:
        async for final in runner.run(pieces):
            finals.append(final)
    except QuotaRefused as exc:
        raise _api_error(web.HTTPTooManyRequests, exc.refusal.message, code=exc.refusal.code,
                     headers=exc.refusal.retry_after_header()) from None
    except UploadFailed as exc:
        raise _api_error(web.HTTPServiceUnavailable, str(exc), code="stt_unavailable") from None
    return _response(form, task, duration, finals)


async def transcriptions(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "transcribe")


async def translations(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "translate")


def _openapi(task: str) -> dict[str, Any]:
    return {"post": {
        "summary": f"OpenAI-compatible audio {task} (multipart: file, model, language, prompt, "
                   "response_format, temperature, timestamp_granularities[], stream)",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "model": {"type": "string"}, "language": {"type": "string"}, "prompt": {"type": "string"},
                "response_format": {"type": "string", "enum": list(FORMATS)},
                "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                "timestamp_granularities[]": {"type": "array", "items": {"enum": ["word", "segment"]}},
                "stream": {"type": "boolean"},
            }}}}},
        "responses": {code: {"description": d} for code, d in (
            ("200", "the transcript in the requested format"), ("400", "unreadable file or bad field"),
            ("401", "no valid token"), ("413", "file too large or too long"),
            ("429", "rate or audio quota"), ("503", "no STT worker answering"))},
    }}


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/v1/audio/translations", translations)
    app[OPENAPI_PATHS]["/v1/audio/transcriptions"] = _openapi("transcription")
    app[OPENAPI_PATHS]["/v1/audio/translations"] = _openapi("translation into English")

