"""TLS: the server context serves https (health/metrics) and wss with a real handshake; old
protocol versions and untrusted certificates are refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from common.health import HealthServer, HealthState
from common.tls import client_ssl_context, scheme, server_ssl_context

pytestmark = pytest.mark.integration


def test_no_files_no_tls_and_pairs_only(tls_files: tuple[Path, Path, Path]) -> None:
    assert server_ssl_context(None, None) is None
    with pytest.raises(ValueError, match="together"):
        server_ssl_context(tls_files[0], None)
    ctx = server_ssl_context(tls_files[0], tls_files[1])
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert scheme("ws", ctx) == "wss" and scheme("http", None) == "http"


def test_unreadable_or_mismatched_files_say_which(tmp_path: Path, tls_files: tuple[Path, Path, Path]) -> None:
    with pytest.raises(ValueError, match="cannot load TLS certificate"):
        server_ssl_context(tmp_path / "missing.pem", tmp_path / "missing-key.pem")
    with pytest.raises(ValueError, match="cannot load TLS certificate"):
        server_ssl_context(tls_files[2], tls_files[1])  # the CA cert does not match this key


async def test_https_health_server_with_hsts_and_metrics_token(tls_files: tuple[Path, Path, Path]) -> None:
    chain, key, ca_file = tls_files
    server = HealthServer(HealthState(service="svc", instance="i"), "127.0.0.1", 0,
                          registry=CollectorRegistry(), metrics_token="m-token-1234",
                          ssl_context=server_ssl_context(chain, key))
    await server.start()
    base = f"https://127.0.0.1:{server.port}"
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(ca_file))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(f"{base}/health") as r:
                assert r.status == 200
                assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                for header in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy",
                               "Referrer-Policy"):
                    assert header in r.headers
            async with http.get(f"{base}/metrics") as r:
                assert r.status == 401 and "Strict-Transport-Security" in r.headers
            async with http.get(f"{base}/metrics", headers={"Authorization": "Bearer m-token-1234"}) as r:
                assert r.status == 200
        # A client that does not trust the test CA refuses the certificate.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"{base}/health")
    finally:
        await server.stop()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_wss_handshake_and_tls_floor(tls_files: tuple[Path, Path, Path]) -> None:
    chain, key, ca_file = tls_files

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, ssl=server_ssl_context(chain, key)) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"wss://127.0.0.1:{port}/", ssl=client_ssl_context(ca_file)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            transport_ssl = ws.transport.get_extra_info("ssl_object")
            assert transport_ssl.version() in ("TLSv1.2", "TLSv1.3")
        # A client capped at TLS 1.1 cannot negotiate with a TLS 1.2 floor.
        old = client_ssl_context(ca_file)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)):
            async with connect(f"wss://127.0.0.1:{port}/", ssl=old, open_timeout=5):
                pass
        # Plain ws to a wss port does not get a session.
        with pytest.raises(Exception):  # noqa: B017 - websockets raises one of several here
            async with connect(f"ws://127.0.0.1:{port}/", open_timeout=5):
                pass
