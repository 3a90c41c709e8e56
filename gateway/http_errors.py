"""REST errors on the public port as one JSON shape: ``{"error": {"code", "message"}}``.

The OpenAI-compatible routes use the same shape (OpenAI's error JSON also nests ``message``
and ``code`` under ``error``) and may add ``type`` and ``param``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web


def json_error(kind: type[web.HTTPException], code: str, message: str, *,
               headers: Mapping[str, str] | None = None, **extra: Any) -> web.HTTPException:
    body = json.dumps({"error": {"code": code, "message": message, **extra}})
    return kind(text=body, content_type="application/json", headers=dict(headers or {}))
