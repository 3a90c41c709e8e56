"""The web page module: what it serves, with which types, caching and CSP (aiohttp test server).

The same answers through the real gateway (with the security-header middleware) are checked
in tests/e2e/test_web_page.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.routes import page

STATIC = Path(page.__file__).resolve().parent.parent / "static"


@pytest.fixture
async def client():
    app = web.Application()
    handlers = page.add_routes(app)
    app.router.add_get("/", handlers.index)
    async with TestClient(TestServer(app)) as c:
        yield c


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


async def test_index_is_html_no_cache_with_a_strict_csp(client) -> None:
    r = await client.get("/")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    csp = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["worker-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in r.headers["Content-Security-Policy"]
    assert "microphone=(self)" in r.headers["Permissions-Policy"]
    html = await r.text()
    assert "{{ASSETS}}" not in html
    assert {"app.js", "app.css", "favicon.svg"} <= {u.rsplit("/", 1)[1] for u in asset_urls(html)}


async def test_index_has_no_inline_script_or_style(client) -> None:
    html = await (await client.get("/")).text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for name in ("start", "transcript", "partial", "status"):
        assert f'id="{name}"' in html


async def test_index_revalidates_with_its_etag(client) -> None:
    first = await client.get("/")
    etag = first.headers["ETag"]
    again = await client.get("/", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("capture-worklet.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_typed_and_cached_for_a_year(client, name: str, content_type: str) -> None:
    site = page.load_site()
    r = await client.get(f"{site.asset_base}/{name}")
    assert r.status == 200
    assert r.headers["Content-Type"] == content_type
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert await r.read() == (STATIC / name).read_bytes()


async def test_every_module_import_resolves_to_a_served_asset(client) -> None:
    site = page.load_site()
    for name, asset in site.assets.items():
        if not name.endswith(".js"):
            continue
        text = asset.body.decode()
        imported = re.findall(r'from "\./([^"]+)"', text) + re.findall(r'new URL\("\./([^"]+)"', text)
        for target in imported:
            r = await client.get(f"{site.asset_base}/{target}")
            assert r.status == 200, (name, target)


async def test_unknown_build_name_or_traversal_is_404(client) -> None:
    site = page.load_site()
    for path in (
        "/static/0000000000000000/app.js",
        f"{site.asset_base}/nope.js",
        f"{site.asset_base}/index.html",  # the template is not an asset
        f"{site.asset_base}/..%2F..%2Froutes%2Fpage.py",
        f"{site.asset_base}/../../pyproject.toml",
    ):
        r = await client.get(path)
        assert r.status == 404, path
    r = await client.get("/static/0000000000000000/app.js")
    assert (await r.json())["error"]["code"] == "unknown_build"


def test_build_id_changes_with_any_asset(tmp_path: Path) -> None:
    for f in STATIC.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    before = page.load_site(tmp_path)
    (tmp_path / "app.css").write_text((tmp_path / "app.css").read_text() + "\n/* changed */\n")
    after = page.load_site(tmp_path)
    assert before.build_id != after.build_id
    assert after.asset_base.encode() in after.html and before.asset_base.encode() not in after.html
    assert after.total_bytes == before.total_bytes + len("\n/* changed */\n")


def test_page_languages_match_the_desktop_client() -> None:
    from client_gui.languages import LANGUAGES

    text = (STATIC / "languages.js").read_text()
    pairs = dict(re.findall(r'^\s+([a-z]{2}): "([^"]+)",$', text, re.M))
    assert pairs == LANGUAGES


async def test_the_pin_button_is_a_plain_button_hidden_until_a_language_is_detected(client) -> None:
    html = await (await client.get("/")).text()
    box = re.search(r'<div id="detected" class="detected" hidden>(.*?)</div>', html, re.S)
    assert box is not None, "the detected-language box, hidden at first, under the source select"
    assert '<button id="pin" type="button"' in box.group(1)  # not a submit: it must not start capture
    assert html.index('id="source"') < html.index('id="pin"') < html.index('id="target"')  # reading order
    script = (STATIC / "language-pin.js").read_text()
    assert "aria-label" in script and "innerHTML" not in script  # text only, never markup
