"""Features served on the public port beside the WebSocket, each a ``setup(app)``.

A feature module adds its routes (and its OpenAPI paths to ``http_app.OPENAPI_PATHS``); it is
listed here once. See ``gateway.http_app`` for what every route gets (headers, limits, errors).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

FEATURES: tuple[Callable[[web.Application], None], ...] = ()
