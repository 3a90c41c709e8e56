"""TLS on the real gateway: wss for clients, https (with HSTS) on the health port."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from websockets.asyncio.client import connect

pytestmark = pytest.mark.integration


async def test_wss_and_https_with_a_self_signed_certificate(make_gateway: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    gw = await make_gateway(tls_cert_file=cert_file, tls_key_file=key_file)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with connect(f"wss://127.0.0.1:{gw.port}/", ssl=client_ctx) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
    with pytest.raises(ssl.SSLCertVerificationError):  # an untrusted certificate is refused
        async with connect(f"wss://127.0.0.1:{gw.port}/", ssl=ssl.create_default_context()):
            pass
    assert gw.health_server is not None
    async with aiohttp.ClientSession() as http, http.get(
        f"https://127.0.0.1:{gw.health_server.port}/health", ssl=client_ctx
    ) as r:
        assert r.status == 200
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
