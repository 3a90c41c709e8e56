"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a temporary
directory, ``postgres`` on a free loopback port, stopped by its pid.

Debian's ``postgresql`` package provides the binaries (the Makefile's test-only apt list
installs it). PostgreSQL refuses to run as root, so under root (CI, containers) the server
runs as ``nobody`` with its directory handed to that user. Host connections need the
password (scram-sha-256), as a real deployment would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common.embedded_redis import free_port

PASSWORD = "pg-test-secret"


def postgres_bindir() -> Path | None:
    """The newest installed server's bin directory, or None when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    def __init__(self, bindir: Path, *, port: int | None = None) -> None:
        self.bindir = bindir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="speech-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "nobody" if os.geteuid() == 0 else None
        self._databases = 0

    @property
    def url(self) -> str:
        """The admin database, as a user would write DATABASE_URL."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def _run_as(self) -> tuple[int, int] | None:
        """(uid, gid) to run the server as, or None to run as ourselves."""
        if self._user is None:
            return None
        entry = pwd.getpwnam(self._user)
        return entry.pw_uid, entry.pw_gid

    def start(self, timeout: float = 60.0) -> PostgresServer:
        owner = self._run_as()
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        user, group = owner if owner else (None, None)
        if owner:
            for path in (self.root, pwfile):
                os.chown(path, *owner)
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, env=env, cwd=self.root, timeout=120, user=user, group=group,
        )
        log = (self.root / "postgres.log").open("wb")
        if owner:
            os.chown(self.root / "postgres.log", *owner)
        # fsync off: a test server's data need not survive a power cut, and fsync is slow here.
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "max_connections=50"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root, start_new_session=True,
            user=user, group=group,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True, check=False,
            )
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"postgres not ready in {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "postgres.log").read_text()[-2000:]
        return ""

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._databases += 1
        return self.new_database_named(f"test_{os.getpid()}_{self._databases}")

    def new_database_named(self, name: str) -> str:
        subprocess.run(
            [str(self.bindir / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'],
            check=True, capture_output=True, timeout=60,
        )
        return self.database_url(name)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: roll back, disconnect, stop
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
