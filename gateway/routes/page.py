"""The web page on the public port: ``GET /`` (when not a WebSocket upgrade) and its assets.

The page is plain HTML, CSS and JavaScript modules in ``gateway/static/`` (no framework, no
CDN: it works offline). At start-up every asset is read into memory once and the set gets one
content hash, the *build id*; the HTML names its assets under ``/static/<build id>/``, so they
can be cached for a year (``immutable``) while the HTML itself is ``no-cache`` and picks up a
new build at once. JavaScript modules import each other by relative URL, which stays inside the
same build directory. Only files known at start-up are served (no path from the request ever
reaches the file system), with types from a fixed table rather than the host's mime database.

The HTML gets its own Content-Security-Policy: scripts, styles, the AudioWorklet and images
from 'self' only, WebSocket back to 'self', no inline code (``'unsafe-inline'`` nowhere).
The page and its assets are public even with auth on: they hold no data, and the page is where
a person types the token; the WebSocket and REST behind it are what auth protects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.http_app import INDEX
from gateway.http_errors import json_error

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
INDEX_FILE = "index.html"
ASSET_PREFIX = "/static"
# The placeholder in index.html replaced by the versioned asset base, e.g. /static/3f2a9c1b0d4e.
ASSET_BASE_MARK = "{{ASSETS}}"

CONTENT_TYPES: dict[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Directives named one by one: default-src 'none' denies whatever is not listed (media, fonts,
# frames, manifests: the page uses none). Downloads of the exports are blob: navigations,
# which CSP does not govern.
PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",  # modules and the AudioWorklet module (worklets follow script-src)
        "worker-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # CSP 3: 'self' also matches ws:/wss: to this same host and port
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
ASSET_CSP = "default-src 'none'; frame-ancestors 'none'"
HTML_CACHE = "no-cache"  # revalidate every time (ETag): a new build is seen at once
ASSET_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Site:
    """Everything the page serves, read once: the HTML (with its ETag) and the assets."""

    build_id: str
    html: bytes
    html_etag: str
    assets: dict[str, Asset]

    @property
    def asset_base(self) -> str:
        return f"{ASSET_PREFIX}/{self.build_id}"

    @property
    def total_bytes(self) -> int:
        """The page's weight: HTML plus every asset."""
        return len(self.html) + sum(len(a.body) for a in self.assets.values())


def load_site(directory: Path = STATIC_DIR) -> Site:
    """Read ``index.html`` and the assets beside it (one level, known types only)."""
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and content_type is not None:
            assets[path.name] = Asset(path.read_bytes(), content_type)
    digest = hashlib.sha256()
    for name, asset in assets.items():
        digest.update(name.encode() + b"\0" + asset.body + b"\0")
    template = (directory / INDEX_FILE).read_text(encoding="utf-8")
    digest.update(template.encode())
    build_id = digest.hexdigest()[:16]
    html = template.replace(ASSET_BASE_MARK, f"{ASSET_PREFIX}/{build_id}").encode()
    return Site(build_id, html, f'"{build_id}"', assets)


class PageHandlers:
    """The two handlers, bound to one loaded :class:`Site`."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def index(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        headers = {
            "Content-Security-Policy": PAGE_CSP,
            "Cache-Control": HTML_CACHE,
            "ETag": site.html_etag,
            # The microphone only for this page itself; nothing else the browser could grant.
            "Permissions-Policy": "microphone=(self), camera=(), geolocation=(), payment=(), usb=()",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Vary": "Accept-Encoding",
        }
        if any(tag.value == site.build_id for tag in request.if_none_match or ()):
            return web.Response(status=304, headers=headers)
        response = web.Response(body=site.html, content_type="text/html", charset="utf-8", headers=headers)
        response.enable_compression()
        return response

    async def asset(self, request: web.Request) -> web.StreamResponse:
        site = self.site
        if request.match_info["build"] != site.build_id:
            # An old page asking for an older build: say so rather than serve a mixed set.
            raise json_error(web.HTTPNotFound, "unknown_build", "this page is out of date; reload it")
        asset = site.assets.get(request.match_info["name"])
        if asset is None:
            raise json_error(web.HTTPNotFound, "not_found", "no such asset")
        headers = {
            "Content-Security-Policy": ASSET_CSP,
            "Cache-Control": ASSET_CACHE,
            "ETag": f'"{site.build_id}"',
            "Cross-Origin-Resource-Policy": "same-origin",
            "Vary": "Accept-Encoding",
        }
        response = web.Response(body=asset.body, headers=headers)
        response.headers["Content-Type"] = asset.content_type
        if not asset.content_type.startswith("image/png"):
            response.enable_compression()
        return response


def add_routes(app: web.Application, site: Site | None = None) -> PageHandlers:
    """The asset route, and the handlers (``index`` is what ``GET /`` answers without upgrade)."""
    handlers = PageHandlers(site or load_site())
    app.router.add_get(ASSET_PREFIX + "/{build}/{name}", handlers.asset)
    return handlers


def setup(app: web.Application) -> None:
    """Feature entry point (gateway/routes FEATURES): the page at ``GET /`` and its assets."""
    app[INDEX] = add_routes(app).index
