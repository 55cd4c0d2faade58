"""One-row statements on the SQLite driver's own connection, their SQL made once.

On a SQLite file the store runs some short writes and reads on the calling thread
(`orchestrator.store.inline_events`), which is the event loop's thread in a worker or an API
process. There a statement must cost what SQLite spends on it: SQLAlchemy's per-execution
work (compiling the statement anew, building its result objects) costs several times that,
and holds the loop that streams tokens to watchers. A `DriverStatement` is the SQL text,
made once per table and dialect, whose parameters go through each column's own bind
processor and whose row comes back through each column's result processor: what is read
(and, for the group commit's writes, what is stored) is exactly what SQLAlchemy would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table
from sqlalchemy.exc import DBAPIError

__all__ = [
    "DriverStatement",
    "driver_row",
    "driver_rows",
    "select_where",
]

_Processor = Callable[[Any], Any] | None


def driver_rows(conn: Connection, sql: str, params: Sequence[object]) -> list[Any]:
    """The rows of `sql` run on the driver's own connection (pysqlite), as its tuples.

    Raises:
        DBAPIError: as SQLAlchemy raises it (`OperationalError` for a locked file...).
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    error = conn.dialect.loaded_dbapi.Error
    try:
        return list(driver.execute(sql, params).fetchall())
    except error as exc:
        raise DBAPIError.instance(sql, params, exc, error) from exc


def driver_row(conn: Connection, sql: str, params: Sequence[object]) -> Any:
    """The first row of `sql` run on the driver's own connection (pysqlite), or None.

    Raises:
        DBAPIError: as `driver_rows`.
    """
    rows = driver_rows(conn, sql, params)
    return rows[0] if rows else None


@dataclass(frozen=True)
class DriverStatement:
    """SQL with `?` parameters, each bound by a column's processor, and its row's columns."""

    sql: str
    binds: tuple[_Processor, ...]
    """One per `?`, in order: the processor of the column that parameter is stored in."""
    columns: tuple[str, ...]
    """The names of the row's columns (what `RETURNING` or `SELECT` lists)."""
    results: tuple[_Processor, ...]
    """One per column of the row: that column's result processor."""

    def row(self, conn: Connection, params: Sequence[object]) -> dict[str, Any] | None:
        """Run it in the caller's transaction; its first row by column name, or None.

        Raises:
            DBAPIError: the driver failed (a locked file, a broken constraint...).
        """
        bound = [
            value if process is None else process(value)
            for value, process in zip(params, self.binds, strict=True)
        ]
        raw = driver_row(conn, self.sql, bound)
        if raw is None:
            return None
        return {
            name: value if process is None else process(value)
            for name, value, process in zip(self.columns, raw, self.results, strict=True)
        }


def _bind(column: Column[Any], dialect: Dialect) -> _Processor:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _result(column: Column[Any], dialect: Dialect) -> _Processor:
    return column.type.dialect_impl(dialect).result_processor(dialect, None)


def _statement(
    dialect: Dialect, sql: str, binds: Sequence[Column[Any]], row: Sequence[Column[Any]]
) -> DriverStatement:
    return DriverStatement(
        sql,
        tuple(_bind(c, dialect) for c in binds),
        tuple(c.key for c in row),
        tuple(_result(c, dialect) for c in row),
    )


@functools.cache
def select_where(dialect: Dialect, table: Table, where: tuple[str, ...]) -> DriverStatement:
    """`SELECT` of every column where each of the `where` columns equals its parameter."""
    columns = list(table.columns)
    conditions = " AND ".join(f"{table.c[w].name} = ?" for w in where)
    sql = f"SELECT {', '.join(c.name for c in columns)} FROM {table.name} WHERE {conditions}"
    return _statement(dialect, sql, [table.c[w] for w in where], columns)
