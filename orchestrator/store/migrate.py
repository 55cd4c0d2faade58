"""Schema migrations, run from code.

Alembic's commands are synchronous and its `env.py` would normally build its own engine,
which cannot work from inside a running event loop with an async driver. Here the
commands run inside `AsyncConnection.run_sync` on the store's own engine instead: the sync
connection is handed to `env.py` through `config.attributes`, so `await Store.migrate()`
works from async code, and in-memory SQLite databases are migrated on the connection that
will use them. The CLI's synchronous `upgrade` drives the same path on a private loop.

Concurrent upgrades (a worker and the CLI starting together on a fresh database) are
serialised with a database lock, so the loser finds the schema current and does nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.exceptions import StoreError
from orchestrator.store._engine import create_store_engine, describe_error, safe_url

__all__ = ["SCRIPT_LOCATION", "alembic_config", "upgrade", "upgrade_engine"]

SCRIPT_LOCATION: Final = "orchestrator.store:migrations"
"""Package-relative location of `env.py` and `versions/`, valid in an installed wheel."""

_PG_MIGRATION_LOCK: Final = 0x6F72_6368_7374_6F72
"""Advisory lock key ("orchstor") that serialises migrations on PostgreSQL."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the store's migrations, without any `alembic.ini`.

    Args:
        url: Only needed when Alembic must open the database itself (offline SQL output,
            or commands that do not go through `upgrade_engine`).
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # ConfigParser interpolates `%`, which URL-encoded passwords contain.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the schema reachable through `engine` to `revision`.

    Runs in one transaction, holding a database-wide lock, on a connection of `engine`.
    Upgrading a database that is already at `revision` does nothing.

    Raises:
        StoreError: The database could not be reached or a migration failed.
    """
    config = alembic_config()
    try:
        async with engine.connect() as connection:
            await _lock_for_migration(connection)
            await connection.run_sync(_upgrade_on, config, revision)
            await connection.commit()
    except (SQLAlchemyError, OSError, CommandError) as exc:
        raise StoreError(
            f"migrating store at {safe_url(engine.url)} to {revision!r} failed: "
            f"{describe_error(exc, engine.url)}"
        ) from exc


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (the `orchestrator db upgrade` command).

    The work runs on a private event loop in a helper thread, so this is safe to call
    whether or not the calling thread already runs a loop (it blocks that loop meanwhile;
    async code should `await Store.migrate()` instead).

    Args:
        url: SQLAlchemy async URL, e.g. `sqlite+aiosqlite:///state/orchestrator.db`.
        revision: Target revision; `head` is the newest.

    Raises:
        StoreError: The URL is unusable, the database unreachable, or a migration failed.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-upgrade") as pool:
        pool.submit(asyncio.run, _upgrade_url(url, revision)).result()


async def _upgrade_url(url: str, revision: str) -> None:
    engine = create_store_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


async def _lock_for_migration(connection: AsyncConnection) -> None:
    """Take a lock held until commit, so concurrent upgrades run one after the other."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # Takes the write lock now (waiting up to the busy timeout) instead of failing
        # halfway through when another process is migrating the same file.
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
        )


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
