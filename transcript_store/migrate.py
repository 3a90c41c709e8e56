"""Schema versions with Alembic: upgrade, downgrade, and the check that refuses a database
whose schema is newer than this release knows (a downgrade of the code must not write to it).

``python -m transcript_store.migrate upgrade`` is the migration step compose and Kubernetes run
before the store starts; the store itself also upgrades at start (a no-op when at head), so
the embedded SQLite needs nothing. ``downgrade REV`` and ``current`` are for operators.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from common.lifecycle import StartupRefused

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "transcript_store:migrations"


class SchemaTooNew(StartupRefused):
    """The database is at a revision this release does not have."""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: an empty database
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def alembic_config(url: URL | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _status(connection: Connection) -> SchemaStatus:
    current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:  # alembic raises CommandError/ResolutionError for an unknown id
            raise SchemaTooNew(
                f"the database schema is at revision {current!r}, which this release does not know "
                f"(its newest is {head!r}): run the release that migrated it, or restore a backup"
            ) from None
    return SchemaStatus(current=current, head=head)


async def status(engine: AsyncEngine) -> SchemaStatus:
    async with engine.connect() as connection:
        return await connection.run_sync(_status)


def _upgrade(connection: Connection, revision: str) -> None:
    _status(connection)  # refuses an unknown (newer) revision before touching anything
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    _status(connection)
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> SchemaStatus:
    """Bring the schema to ``revision`` (default the newest); refuses an unknown current one."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)
    return await status(engine)


async def downgrade(engine: AsyncEngine, revision: str) -> SchemaStatus:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)
    return await status(engine)


async def _main(args: argparse.Namespace) -> int:
    from common.settings import StoreSettings
    from transcript_store.db import database_url, engine_from_settings, redacted

    settings = StoreSettings()
    engine = engine_from_settings(settings)
    try:
        if args.action == "upgrade":
            result = await upgrade(engine, args.revision or "head")
        elif args.action == "downgrade":
            result = await downgrade(engine, args.revision or "-1")
        else:
            result = await status(engine)
    except StartupRefused as exc:
        print(f"transcript_store.migrate: {exc}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    print(f"{redacted(database_url(settings))}: schema at {result.current or 'nothing'} (newest {result.head})")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transcript_store.migrate", description=__doc__)
    parser.add_argument("action", choices=("upgrade", "downgrade", "current"))
    parser.add_argument("revision", nargs="?", help="upgrade: default head; downgrade: default -1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(_main(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
