"""What every ledger of the store is built from: its sessions, dialect and error wrapper.

`Store` owns one engine; each ledger (`budgets`, `pins`, `notices`, `outcomes`, `cache`)
and each set of reads (`reports`, `stream`, `queue`) works on it through the same three
parts, handed over as one `LedgerParts`, so a new one is a subclass of `Ledger` and one
line in `Store.__init__`. On a SQLite file two more parts, `read_here` and `write_here`, run
a read or a write transaction on the calling thread (`orchestrator.store.inline_events`);
elsewhere they decline and the ledger goes through its sessions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Dialect, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.store.driver_sql import driver_rows
from orchestrator.store.tables import Base

__all__ = ["Ledger", "LedgerParts", "ReadHere", "rows_here"]

ResultT = TypeVar("ResultT")


class ReadHere(Protocol):
    """Runs a read or a write on the calling thread; None when it cannot (pooled then)."""

    def __call__(self, body: Callable[[Connection], ResultT], /) -> ResultT | None:
        """`body`'s answer, or None: this store has no such connection, or it failed."""


def _nowhere(body: Callable[[Connection], ResultT], /) -> ResultT | None:
    """No read on the calling thread (PostgreSQL, in-memory SQLite): always the pool's."""
    return None


@dataclass(frozen=True)
class _DriverForm:
    """A statement compiled once for pysqlite: its SQL, and how to lay out its parameters."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    fixed: Mapping[str, Any]
    """Values the statement itself binds (`.values(settled=True)`)."""


@functools.lru_cache(maxsize=256)
def _driver_form(stmt: Executable, dialect: Dialect, keys: tuple[str, ...]) -> _DriverForm:
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    return _DriverForm(
        compiled.string,
        names,
        tuple(processors.get(name) for name in names),
        {name: compiled.binds[name].effective_value for name in names if name not in keys},
    )


def rows_here(conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> list[Any]:
    """`conn.execute(stmt, params)`'s rows, on the driver's own connection on pysqlite.

    A statement that returns no rows gives an empty list.

    The ledgers' statements on a gateway request's path (budget reservations and spend,
    rate counts) are built once, and SQLAlchemy caches their compiled form, yet its work
    per execution (parameter processing, the result's metadata and row objects) cost
    several times the statement on SQLite. Here a statement is compiled once per set of
    parameter names, and runs on the driver with the same SQL and each parameter's own
    bind processor; rows come back as tuples of the driver's values (the ledgers' columns
    are strings and numbers, which SQLAlchemy passes through unchanged on SQLite). Any
    other driver runs it through SQLAlchemy.

    Raises:
        DBAPIError: as SQLAlchemy raises it (`OperationalError` for a locked file...).
    """
    dialect = conn.dialect
    if dialect.driver != "pysqlite":
        result = conn.execute(stmt, params)
        return list(result.all()) if result.returns_rows else []
    form = _driver_form(stmt, dialect, tuple(params))
    values: list[Any] = []
    for name, process in zip(form.names, form.processors, strict=True):
        value = params[name] if name in params else form.fixed[name]
        values.append(value if process is None else process(value))
    return driver_rows(conn, form.sql, values)


@dataclass(frozen=True)
class LedgerParts:
    """The store's parts a ledger works with."""

    sessions: async_sessionmaker[AsyncSession]
    """Opens a database session on the store's engine."""
    dialect: str
    """The engine's dialect name (`sqlite` or `postgresql`): upserts differ between them."""
    errors: Callable[[str], AbstractContextManager[None]]
    """`errors("do something")` turns database failures inside it into `StoreError`."""
    read_here: ReadHere = field(default=_nowhere)
    """Reads on the calling thread (a SQLite file: `Store`'s inline connection)."""
    write_here: ReadHere = field(default=_nowhere)
    """One write transaction on the calling thread, the same way (None: write pooled)."""


class Ledger:
    """Base of the store's ledgers: keeps the parts where every ledger method finds them."""

    def __init__(self, parts: LedgerParts) -> None:
        self._sessions = parts.sessions
        self._dialect = parts.dialect
        self._errors = parts.errors
        self._read_here = parts.read_here
        self._write_here = parts.write_here

    async def _write(self, action: str, body: Callable[[Connection], ResultT]) -> ResultT:
        """`body` in one write transaction, database failures raised as `StoreError`.

        On the calling thread when `write_here` can run it (a SQLite file whose write lock
        is free), else in a pooled transaction (`run_sync`). An exception of `body`'s own
        rolls the transaction back and reaches the caller.
        """
        with self._errors(action):
            done = self._write_here(lambda conn: (body(conn),))
            if done is not None:
                return done[0]
            async with self._sessions.begin() as session:
                return await session.run_sync(lambda sync: body(sync.connection()))

    def _insert(self, table: type[Base]) -> sqlite.Insert:
        """An `INSERT` into `table` in the dialect's flavour, for its `ON CONFLICT` clauses.

        Typed as SQLite's: both flavours have the same `on_conflict_*` methods.
        """
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return insert(table)  # type: ignore[return-value]
