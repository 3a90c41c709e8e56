"""The store suite runs twice: on SQLite (a file in a temp dir) and on a real PostgreSQL
server (``initdb`` in a temp dir, a free loopback port, one fresh database per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common.settings import StoreSettings
from tests.postgres_server import PostgresServer, postgres_bindir
from transcript_store import migrate
from transcript_store.db import database_url, engine_from_settings


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; `make test` installs it)")
    server = PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """DATABASE_URL as a user writes it, for an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'transcripts.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def store_settings(db_url: str, tmp_path: Path) -> StoreSettings:
    return StoreSettings(database_url=db_url, data_dir=tmp_path)  # type: ignore[arg-type]


@pytest.fixture
async def bare_engine(store_settings: StoreSettings) -> AsyncIterator[AsyncEngine]:
    """An engine on the empty database (no schema yet)."""
    engine = engine_from_settings(store_settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(bare_engine: AsyncEngine) -> AsyncEngine:
    """An engine on a database migrated to the newest revision."""
    await migrate.upgrade(bare_engine)
    return bare_engine


@pytest.fixture
def dialect(store_settings: StoreSettings) -> str:
    return database_url(store_settings).get_backend_name()
