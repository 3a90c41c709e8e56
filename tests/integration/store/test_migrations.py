"""Alembic migrations on SQLite and PostgreSQL: upgrade, downgrade, the newest revision
matches the schema the code queries, and a newer unknown schema is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from common.settings import StoreSettings
from transcript_store import migrate
from transcript_store.schema import metadata

APP_TABLES = {"sessions", "segments", "translations", "deleted_sessions"}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_upgrade_creates_the_schema_the_code_uses(bare_engine: AsyncEngine) -> None:
    status = await migrate.upgrade(bare_engine)
    assert status.at_head and status.current == migrate.head_revision() == "0002"
    assert await _tables(bare_engine) >= APP_TABLES

    def diff(connection: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with bare_engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == [], f"migrations and transcript_store/schema.py disagree: {differences}"


async def test_downgrade_step_by_step_and_back(bare_engine: AsyncEngine) -> None:
    await migrate.upgrade(bare_engine)
    status = await migrate.downgrade(bare_engine, "0001")
    assert status.current == "0001"
    tables = await _tables(bare_engine)
    assert "deleted_sessions" not in tables and {"sessions", "segments", "translations"} <= tables
    status = await migrate.downgrade(bare_engine, "base")
    assert status.current is None
    assert not (APP_TABLES & await _tables(bare_engine))
    status = await migrate.upgrade(bare_engine, "0001")
    assert status.current == "0001"
    status = await migrate.upgrade(bare_engine)
    assert status.current == "0002" and await _tables(bare_engine) >= APP_TABLES


async def test_upgrade_keeps_the_rows(bare_engine: AsyncEngine) -> None:
    await migrate.upgrade(bare_engine, "0001")
    async with bare_engine.begin() as connection:
        await connection.execute(sa.text(
            "INSERT INTO sessions (session_id, subject, gateway, created_at, updated_at) "
            "VALUES ('s1', 'alice', 'gw', 1.0, 2.0)"
        ))
    await migrate.upgrade(bare_engine)
    async with bare_engine.connect() as connection:
        subject = (await connection.execute(sa.text("SELECT subject FROM sessions"))).scalar_one()
    assert subject == "alice"


async def test_a_newer_unknown_schema_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(migrate.SchemaTooNew, match="9999_from_the_future"):
        await migrate.upgrade(engine)
    with pytest.raises(migrate.SchemaTooNew):
        await migrate.status(engine)
    # Nothing was touched: the tables are still there.
    assert await _tables(engine) >= APP_TABLES


def test_migration_command_line(store_settings: StoreSettings) -> None:
    """The step compose and Kubernetes run before the store: `python -m transcript_store.migrate`."""
    env = {**os.environ, "DATABASE_URL": store_settings.database_url.get_secret_value(),
           "DATA_DIR": str(store_settings.data_dir)}
    up = subprocess.run([sys.executable, "-m", "transcript_store.migrate", "upgrade"], env=env,
                        capture_output=True, text=True, timeout=120, check=False)
    assert up.returncode == 0, up.stderr
    assert "schema at 0002" in up.stdout
    assert "pg-test-secret" not in up.stdout + up.stderr  # the password never reaches a log
    down = subprocess.run([sys.executable, "-m", "transcript_store.migrate", "downgrade", "0001"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert down.returncode == 0 and "schema at 0001" in down.stdout, down.stderr
