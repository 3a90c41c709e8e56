"""The local stack with authentication on, as an operator would run it.

No token, a forged token, an expired token and ``alg: none`` are refused; a token from
``speech-pipeline token`` is accepted and transcribes; every HTTP answer carries the security
headers; ``/metrics`` wants its bearer token; and neither the secret nor the token appears in
anything any process logged during the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import jwt
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from common.embedded_redis import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-" + "k" * 40
METRICS_TOKEN = "metrics-" + "m" * 30
HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy")


def http(url: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


async def status_of(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=5, **kwargs):  # type: ignore[arg-type]
            pass
    return info.value.response.status_code


def test_auth_on_the_local_stack(tmp_path: Path) -> None:
    log_path = tmp_path / "stack.log"
    ports = {k: free_port() for k in ("ws", "gw", "stt", "tr", "store")}
    env = {**os.environ, "JWT_SECRET": SECRET, "METRICS_TOKEN": METRICS_TOKEN, "MODEL_SIZE": "tiny.en",
           "BEAM_SIZE": "1", "SILENCE_THRESHOLD_SECONDS": "0.8", "LOG_LEVEL": "DEBUG", "DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "common.cli", "up", "--gateway-port", str(ports["ws"]),
           "--gateway-health-port", str(ports["gw"]), "--stt-health-port", str(ports["stt"]),
           "--translation-health-port", str(ports["tr"]), "--store-health-port", str(ports["store"])]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"ws://127.0.0.1:{ports['ws']}/"
    token = ""
    try:
        deadline = time.monotonic() + 120
        while "ready in" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        minted = subprocess.run([sys.executable, "-m", "common.cli", "token", "--subject", "alice", "--ttl", "600"],
                                env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        token = minted.stdout.strip()
        assert token.count(".") == 2 and SECRET not in minted.stdout + minted.stderr

        now = int(time.time())
        forged = jwt.encode({"sub": "alice", "exp": now + 60}, "not-the-secret-" * 3, algorithm="HS256")
        expired = jwt.encode({"sub": "alice", "exp": now - 3600}, SECRET, algorithm="HS256")
        unsigned = jwt.encode({"sub": "alice", "exp": now + 60}, None, algorithm="none")  # type: ignore[arg-type]

        async def scenario() -> list[dict]:
            for bad in (forged, expired):
                assert await status_of(url, additional_headers={"Authorization": f"Bearer {bad}"}) == 401
            assert await status_of(f"{url}?token={unsigned}") == 401
            # No token at all: the first message must be auth; audio instead is refused with 1008.
            async with connect(url) as ws:
                await ws.send(b"\x00\x00" * 160)
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
                assert ws.close_code == 1008
            # The minted token works, and the session transcribes.
            with wave.open(str(ROOT / "tests" / "fixtures" / "stt" / "en_weather.wav")) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            pcm = np.concatenate([pcm, np.zeros(16000 * 2, dtype="<i2")])
            out: list[dict] = []
            async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                assert json.loads(await ws.recv())["type"] == "ready"
                for i in range(0, len(pcm), 1024):
                    await ws.send(pcm[i : i + 1024].tobytes())
                    await asyncio.sleep(0.01)
                await ws.send(json.dumps({"type": "auth", "token": token}))  # refresh mid-session
                await ws.send(json.dumps({"type": "end"}))
                async for raw in ws:
                    out.append(json.loads(raw))
            return out

        messages = asyncio.run(scenario())
        finals = [m for m in messages if m["type"] == "final"]
        assert finals and "sunny" in finals[0]["text"].lower()
        assert messages[-1]["type"] == "done"

        for port in (ports["gw"], ports["stt"], ports["tr"]):
            base = f"http://127.0.0.1:{port}"
            for path, auth, expected in (("/health", None, 200), ("/metrics", None, 401),
                                         ("/metrics", METRICS_TOKEN, 200), ("/nope", None, 404)):
                code, headers = http(base + path, auth)
                assert code == expected, (base + path, code)
                for header in HEADERS:
                    assert header in headers, (base + path, header)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    logged = log_path.read_text()
    assert "handshake refused" in logged  # the run did log (at DEBUG) what happened
    assert SECRET not in logged and METRICS_TOKEN not in logged
    assert token and token not in logged
    for part in token.split("."):
        assert part not in logged
