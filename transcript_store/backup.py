"""``speech-pipeline backup PATH`` / ``restore PATH`` for the transcript database.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent snapshot
while the store keeps writing; restore copies the file back the same way, page by page,
under SQLite's own locks. PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean
--if-exists`` (the client tools of Debian's ``postgresql-client``); the password goes to them
in ``PGPASSWORD``, never on a command line. A SQLite restore refuses a backup whose schema
is newer than this release knows; after a PostgreSQL restore the store itself refuses to
start on such a schema. Audio is never in a backup: the database holds none.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from transcript_store.db import sqlite_path


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    kind: str  # "sqlite" or "postgresql"


def backup(url: URL, path: Path) -> BackupResult:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_path(url)
    if db is not None:
        if not db.exists():
            raise BackupError(f"no database at {db} yet (start the store once)")
        tmp = path.with_name(path.name + ".partial")
        with sqlite3.connect(db) as source, sqlite3.connect(tmp) as target:
            source.backup(target)
        target.close()
        source.close()
        tmp.replace(path)  # a half-written backup never carries the final name
        return BackupResult(path, path.stat().st_size, "sqlite")
    _pg_tool("pg_dump", url, ["--format=custom", "--no-owner", f"--file={path}"])
    return BackupResult(path, path.stat().st_size, "postgresql")


def restore(url: URL, path: Path) -> BackupResult:
    """Replace the database's contents with the backup's (stop the store first)."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    db = sqlite_path(url)
    if db is not None:
        _check_sqlite_backup(path)
        db.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as source, sqlite3.connect(db) as target:
            source.backup(target)
        target.close()
        source.close()
        return BackupResult(path, path.stat().st_size, "sqlite")
    _pg_tool("pg_restore", url, ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(path)])
    return BackupResult(path, path.stat().st_size, "postgresql")


def _check_sqlite_backup(path: Path) -> None:
    from alembic.script import ScriptDirectory

    from transcript_store.migrate import alembic_config

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a transcript database backup ({exc})") from None
    script = ScriptDirectory.from_config(alembic_config())
    if row is not None:
        try:
            script.get_revision(row[0])
        except Exception:
            raise BackupError(f"{path} has schema revision {row[0]!r}, newer than this release knows") from None


def _pg_tool(tool: str, url: URL, args: list[str]) -> None:
    binary = shutil.which(tool) or _debian_tool(tool)
    if binary is None:
        raise BackupError(f"{tool} is not installed (Debian package postgresql-client)")
    env = {**os.environ}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    connection = ["--host", url.host or "localhost", "--port", str(url.port or 5432),
                  "--username", url.username or "postgres", "--dbname", url.database or "postgres"]
    done = subprocess.run([binary, *connection, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def _debian_tool(tool: str) -> str | None:
    """Debian keeps the versioned tools in /usr/lib/postgresql/N/bin (newest first)."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    for bindir in sorted(versions, key=lambda p: int(p.parent.name), reverse=True):
        if (bindir / tool).exists():
            return str(bindir / tool)
    return None
