"""Features served on the public port beside the WebSocket, each a ``setup(app)``.

A feature module adds its routes (and its OpenAPI paths to ``http_app.OPENAPI_PATHS``); it is
listed here once. See ``gateway.http_app`` for what every route gets (headers, limits, errors).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.routes import openai_audio, page, transcripts

FEATURES: tuple[Callable[[web.Application], None], ...] = (
    page.setup,  # GET / (the web page) and /static/<build>/...
    transcripts.setup,  # /v1/sessions...
    openai_audio.setup,  # /v1/audio/...
)
