"""`speech-pipeline backup` / `restore` round-trip on SQLite (online backup API) and
PostgreSQL (pg_dump / pg_restore), through the command line a user runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from common.settings import StoreSettings
from tests.integration.store.records import final, session, translation
from transcript_store.repository import ANYONE, TranscriptRepository
from transcript_store.writer import TranscriptWriter


def _cli(store_settings: StoreSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": store_settings.database_url.get_secret_value(),
           "DATA_DIR": str(store_settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "common.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def _texts(repo: TranscriptRepository, session_id: str) -> list[tuple[str, str | None]] | None:
    transcript = await repo.get_transcript(ANYONE, session_id, translation="de")
    return None if transcript is None else [(s.text, s.translation) for s in transcript.segments]


async def test_backup_then_restore_brings_back_exactly_what_was_saved(
    engine: AsyncEngine, store_settings: StoreSettings, tmp_path: Path
) -> None:
    writer = TranscriptWriter(engine, clock=lambda: 5000.0)
    repo = TranscriptRepository(engine)
    await writer.write([session("kept", "alice"), *(final("kept", i) for i in range(5)), translation("kept", 2)])
    before = await _texts(repo, "kept")
    assert before is not None and len(before) == 5

    target = tmp_path / "backups" / "transcripts.backup"
    done = _cli(store_settings, "backup", str(target))
    assert done.returncode == 0, done.stderr
    assert target.stat().st_size > 0 and "pg-test-secret" not in done.stdout + done.stderr

    # After the backup: one session deleted, another added, the kept one changed.
    await writer.write([session("later", "bob"), final("later", 0), final("kept", 5)])
    assert await repo.delete_session(ANYONE, "kept", now=5001.0)
    assert await _texts(repo, "kept") is None
    await engine.dispose()  # the store is stopped for a restore

    done = _cli(store_settings, "restore", str(target))
    assert done.returncode == 0, done.stderr
    assert await _texts(repo, "kept") == before
    assert await repo.get_session(ANYONE, "later") is None
    page = await repo.list_sessions(ANYONE)
    assert [s.session_id for s in page.sessions] == ["kept"]
    assert page.sessions[0].subject == "alice"


def test_restore_of_a_missing_backup_says_so(tmp_path: Path) -> None:
    settings = StoreSettings(data_dir=tmp_path)  # the same answer on either database: checked once
    done = _cli(settings, "restore", str(tmp_path / "nothing-here"))
    assert done.returncode == 1
    assert "no backup at" in done.stderr


async def test_a_sqlite_backup_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from transcript_store import migrate
    from transcript_store.db import engine_from_settings

    settings = StoreSettings(data_dir=tmp_path / "data")
    engine = engine_from_settings(settings)
    await migrate.upgrade(engine)
    await engine.dispose()
    target = tmp_path / "newer.backup"
    assert _cli(settings, "backup", str(target)).returncode == 0
    with sqlite3.connect(target) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_newer'")
    conn.close()
    done = _cli(settings, "restore", str(target))
    assert done.returncode == 1 and "newer than this release knows" in done.stderr
