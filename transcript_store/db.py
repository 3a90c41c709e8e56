"""The database engine from ``DATABASE_URL``: SQLite (aiosqlite) in ``DATA_DIR`` by default,
PostgreSQL (asyncpg) for ``postgresql://``. Every other module takes an ``AsyncEngine`` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from common.lifecycle import StartupRefused
from common.settings import DatabaseSettings

SQLITE_FILE = "transcripts.db"


class UnsupportedDatabase(StartupRefused):
    """DATABASE_URL names a database this service cannot use."""


def database_url(settings: DatabaseSettings) -> URL:
    """The SQLAlchemy URL, with the async driver of its database."""
    raw = settings.database_url.get_secret_value().strip()
    if not raw:
        return make_url(f"sqlite+aiosqlite:///{Path(settings.data_dir).expanduser() / SQLITE_FILE}")
    try:
        url = make_url(raw)
    except Exception as exc:  # ArgumentError and friends: say what is wrong without the URL
        raise UnsupportedDatabase(f"DATABASE_URL is not a database URL ({exc.__class__.__name__})") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    raise UnsupportedDatabase(f"DATABASE_URL must be postgresql:// or sqlite:///, not {backend}://")


def redacted(url: URL) -> str:
    """The URL for a log line: the password hidden."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_engine(url: URL, *, create_dir: bool = True, **kwargs: Any) -> AsyncEngine:
    """An engine; for SQLite WAL and foreign keys are on, and the data directory is created
    unless ``create_dir`` is false (a reader: the store creates it)."""
    path = sqlite_path(url)
    if path is not None:
        if create_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
        # The store writes while the gateway reads: WAL lets readers go on during a write,
        # and busy_timeout makes a writer wait for a lock instead of failing at once.
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if path is not None:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def engine_from_settings(settings: DatabaseSettings, *, create_dir: bool = True, **kwargs: Any) -> AsyncEngine:
    return create_engine(database_url(settings), create_dir=create_dir, **kwargs)
