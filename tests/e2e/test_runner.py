"""``speech-pipeline up`` as a user runs it: healthy, restarts a dead child, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from common.embedded_redis import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200
    except OSError:
        return False


def bound(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait(cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def start_up(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """``speech-pipeline up`` (tiny.en) on free ports: the process and its ports (websocket,
    then the health ports of the gateway, STT worker, translation worker and store)."""
    ports = [free_port() for _ in range(5)]
    ws, gw, stt, tr, store = ports
    env = {**os.environ, "MODEL_SIZE": "tiny.en", "LOG_LEVEL": "WARNING", "DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "common.cli", "up", "--gateway-port", str(ws), "--gateway-health-port", str(gw),
           "--stt-health-port", str(stt), "--translation-health-port", str(tr), "--store-health-port", str(store)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True), ports


def read_until_ready(proc: subprocess.Popen[str]) -> str:
    """What the runner printed up to its "ready in" line (where to connect, once all are up)."""
    assert proc.stdout is not None
    out = ""
    while "ready in" not in out:
        line = proc.stdout.readline()
        assert line, "speech-pipeline up exited"
        out += line
    return out


def test_up_restarts_a_dead_child_and_stops_within_15s(tmp_path: Path) -> None:
    proc, ports = start_up(tmp_path)
    ws, gw, stt, _tr, store = ports
    try:
        started = time.monotonic()
        out = read_until_ready(proc)
        assert f"ws://127.0.0.1:{ws}/" in out
        assert ready(gw) and ready(stt) and ready(store)
        print(f"\nup -> every service ready in {time.monotonic() - started:.1f}s")
        children = psutil.Process(proc.pid).children()
        assert len(children) == 5  # redis, gateway, STT worker, translation worker, transcript store
        stt_child = next(c for c in children if "stt_worker" in " ".join(c.cmdline()))
        stt_child.kill()  # SIGKILL: the runner must notice and restart it
        wait(lambda: not ready(stt), 10)
        wait(lambda: ready(stt), 60)
        assert stt_child.pid not in [c.pid for c in psutil.Process(proc.pid).children()]
        pids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        stop_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        took = time.monotonic() - stop_at
        print(f"SIGINT -> everything stopped in {took:.1f}s")
        assert proc.returncode == 0
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert not any(bound(p) for p in ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_runner_takes_its_children_with_it(tmp_path: Path) -> None:
    """SIGKILL gives the runner no chance to stop anything: its children (Redis and every
    service) get SIGTERM from the kernel instead (common/parent_death.py) and stop, so their
    ports are free for the next ``make run``."""
    proc, ports = start_up(tmp_path)
    children: list[psutil.Process] = []
    try:
        read_until_ready(proc)
        children = psutil.Process(proc.pid).children()
        assert len(children) == 5
        proc.kill()
        proc.wait(10)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"outlived the runner: {[' '.join(p.cmdline()[-2:]) for p in alive]}"
        wait(lambda: not any(bound(p) for p in ports), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in children:  # ours (started by our child); only if the test failed
            if child.is_running():
                child.kill()
