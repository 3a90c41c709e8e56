"""REST errors on the public port as one JSON shape: ``{"error": {"code", "message"}}``.

The OpenAI-compatible routes use the same shape (OpenAI's error JSON also nests ``message``
and ``code`` under ``error``) and add ``type`` and ``param``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web


class JsonHTTPError(web.HTTPException):
    """An HTTP error answer with a JSON body, for any status (aiohttp's classes each fix one,
    and some take extra constructor arguments)."""

    def __init__(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(text=body, content_type="application/json", headers=dict(headers or {}),
                         reason=HTTPStatus(status).phrase)


def json_error(kind: type[web.HTTPException], code: str, message: str, *,
               headers: Mapping[str, str] | None = None, **extra: Any) -> web.HTTPException:
    """The error answer of ``kind``'s status: raise what this returns."""
    body = json.dumps({"error": {"code": code, "message": message, **extra}})
    return JsonHTTPError(kind.status_code, body, headers)
