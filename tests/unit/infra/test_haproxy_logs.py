"""HAProxy, run for real with the logging and forwarding lines of infra/haproxy.cfg.

A request with ``?token=`` goes through HAProxy to a small HTTP server: HAProxy's log line
must hold the path but never the query, and the server must receive ``X-Forwarded-For``
with the client's address (what the gateway's ``client_ip`` reads behind TRUSTED_PROXIES).
"""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from common.embedded_redis import free_port

HAPROXY = shutil.which("haproxy")
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (Debian package haproxy)")


def _lines(config: str, pattern: str) -> list[str]:
    return [line.strip() for line in config.splitlines() if re.match(pattern, line.strip())]


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join(5)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_log_line_has_no_query_and_the_gateway_gets_forwarded_for(
    paths: Any, backend: int, tmp_path: Path
) -> None:
    real = (paths.infra / "haproxy.cfg").read_text()
    log_format = _lines(real, r"log-format\s")
    forwardfor = _lines(real, r"option forwardfor\b")
    assert log_format and forwardfor, "haproxy.cfg must set its own log-format and option forwardfor"
    assert not _lines(real, r"option httplog\b"), "option httplog's format logs the query string"
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text("\n".join([
        "global", "    log stdout format raw local0 info",
        "defaults", "    mode http", "    log global", *(f"    {line}" for line in log_format + forwardfor),
        "    timeout connect 5s", "    timeout client 10s", "    timeout server 10s",
        "frontend websocket", f"    bind 127.0.0.1:{port}", "    default_backend gateways",
        "backend gateways", f"    server gateway 127.0.0.1:{backend}",
        "",
    ]))
    assert HAPROXY is not None
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stream?token=eyJsecret.part.here", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    request_lines = [line for line in output.splitlines() if "/v1/stream" in line]
    assert request_lines, output
    assert all("secret" not in line and "token=" not in line for line in request_lines), request_lines
    assert '"GET" "/v1/stream"' in request_lines[0]
    assert _Recorder.seen and _Recorder.seen[0].get("x-forwarded-for") == "127.0.0.1"
