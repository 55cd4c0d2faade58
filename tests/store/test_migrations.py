"""Migrations on SQLite and PostgreSQL: an empty database reaches every revision in turn,
and each revision keeps the rows written under the one before it.

The revisions are read from the migration scripts, so a new revision is covered the day it
lands: the data test fills every table of the older schema with a generated row (values
chosen from each reflected column's type) and checks every value is still there, unchanged,
after the upgrade, and that the store at head can still read it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.store import Store, upgrade
from orchestrator.store.migrate import alembic_config

REVISIONS: list[str] = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
]
PAIRS = list(itertools.pairwise(REVISIONS))
# Columns whose values the store reads back as enums.
VALID = {
    ("sessions", "status"): "completed",
    ("audit_events", "kind"): "model_call",
    ("approvals", "status"): "approved",
}


async def on_connection(url: str, fn: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def version(conn: sa.Connection) -> str:
    return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())


def sample_value(table: str, column: dict[str, Any], row: int) -> object:
    """A value fit for a reflected column, distinct per column and row."""
    kind = column["type"]
    name = column["name"]
    if (table, name) in VALID:
        return VALID[table, name]
    if isinstance(kind, sa.JSON):
        return {"column": name, "row": row, "list": [1, 2.5, "x", None]}
    if isinstance(kind, sa.DateTime):
        return datetime(2025, 1, 2, 3, 4, 5, 6000 + row, tzinfo=UTC)
    if isinstance(kind, sa.Boolean):
        return row % 2 == 0
    if isinstance(kind, sa.Integer):
        return 1000 + row
    if isinstance(kind, sa.Float | sa.Numeric):
        return 0.25 + row
    return f"{name}-{row}"


def normalise(value: object) -> object:
    """Compare instants, not how each backend hands back a timestamp."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    return value


def tables(conn: sa.Connection) -> list[str]:
    """Every table of the store at the connection's revision."""
    return sorted(set(sa.inspect(conn).get_table_names()) - {"alembic_version"})


def fill(conn: sa.Connection) -> dict[str, list[dict[str, object]]]:
    """Two generated rows in every table; returns what was written."""
    inspector = sa.inspect(conn)
    written: dict[str, list[dict[str, object]]] = {}
    for table_name in tables(conn):
        table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        pk = set(inspector.get_pk_constraint(table_name)["constrained_columns"])
        columns = [
            col
            for col in inspector.get_columns(table_name)
            # Generated keys stay generated, so the sequence still matches afterwards (a
            # lone integer key; one of several is a value like any other).
            if not (pk == {col["name"]} and isinstance(col["type"], sa.Integer))
        ]
        rows = [
            {col["name"]: sample_value(table_name, col, row) for col in columns} for row in range(2)
        ]
        conn.execute(table.insert(), rows)
        written[table_name] = rows
    return written


def read(conn: sa.Connection) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for table_name in tables(conn):
        table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        rows = conn.execute(sa.select(table)).mappings().all()
        found[table_name] = [dict(row) for row in rows]
    return found


def test_there_is_a_chain_of_revisions() -> None:
    assert REVISIONS, "no migration scripts found"
    assert REVISIONS[0] == "0001"


async def test_empty_database_upgrades_through_every_revision(store_url: str) -> None:
    for revision in REVISIONS:
        upgrade(store_url, revision)
        assert await on_connection(store_url, version) == revision

    async with await Store.open(store_url) as store:
        assert await store.list_sessions() == []


@pytest.mark.parametrize(("previous", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
async def test_upgrade_keeps_data_of_the_previous_revision(
    store_url: str, previous: str, target: str
) -> None:
    upgrade(store_url, previous)
    written = await on_connection(store_url, fill)

    upgrade(store_url, target)

    assert await on_connection(store_url, version) == target
    found = await on_connection(store_url, read)
    for table_name, rows in written.items():
        assert len(found[table_name]) == len(rows), table_name
        for before, after in zip(rows, found[table_name], strict=True):
            for column, value in before.items():
                assert normalise(after[column]) == normalise(value), (table_name, column)
    if target == REVISIONS[-1]:
        # The store's own code reads the migrated rows at head.
        async with await Store.open(store_url) as store:
            sessions = await store.list_sessions()
            assert {rec.session_id for rec in sessions} == {"session_id-0", "session_id-1"}
            assert len(await store.list_events("session_id-0")) == 1
            assert len(await store.list_approvals(session_id="session_id-1")) == 1


async def test_db_upgrade_command_migrates_the_configured_database(store_url: str) -> None:
    env = {**os.environ, "ORCHESTRATOR_DATABASE_URL": store_url, "ORCHESTRATOR_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "db",
        "upgrade",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)

    assert proc.returncode == 0, err.decode()
    assert "store is up to date" in out.decode()
    assert await on_connection(store_url, version) == REVISIONS[-1]
