"""DATABASE_URL to the engine URL: the async driver of each database, SQLite by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from common.settings import DatabaseSettings
from transcript_store.db import UnsupportedDatabase, database_url, redacted, sqlite_path


def _url(value: str, tmp_path: Path) -> str:
    return database_url(DatabaseSettings(database_url=SecretStr(value), data_dir=tmp_path)).render_as_string(
        hide_password=False
    )


def test_empty_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    url = database_url(DatabaseSettings(database_url=SecretStr(""), data_dir=tmp_path))
    assert url.drivername == "sqlite+aiosqlite"
    assert sqlite_path(url) == tmp_path / "transcripts.db"


@pytest.mark.parametrize("given", ["postgresql://u:p@db:5432/t", "postgres://u:p@db:5432/t",
                                   "postgresql+psycopg://u:p@db:5432/t"])
def test_postgresql_uses_asyncpg(given: str, tmp_path: Path) -> None:
    assert _url(given, tmp_path) == "postgresql+asyncpg://u:p@db:5432/t"


def test_sqlite_url_and_password_redaction(tmp_path: Path) -> None:
    assert _url(f"sqlite:///{tmp_path}/x.db", tmp_path) == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    url = database_url(DatabaseSettings(database_url=SecretStr("postgresql://u:s3cret@db/t")))
    assert "s3cret" not in redacted(url) and "***" in redacted(url)


@pytest.mark.parametrize("given", ["mysql://u:p@db/t", "not a url at all"])
def test_other_databases_are_refused_without_echoing_the_url(given: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedDatabase) as info:
        _url(given, tmp_path)
    assert "p@db" not in str(info.value)
