"""What every ledger of the store is built from: its sessions, dialect and error wrapper.

`Store` owns one engine; each ledger (`budgets`, `pins`, `notices`, `outcomes`, `cache`)
and each set of reads (`reports`, `stream`, `queue`) works on it through the same three
parts, handed over as one `LedgerParts`, so a new one is a subclass of `Ledger` and one
line in `Store.__init__`. On a SQLite file two more parts, `read_here` and `write_here`, run
a read or a write transaction on the calling thread (`orchestrator.store.inline_events`);
elsewhere they decline and the ledger goes through its sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.store.tables import Base

__all__ = ["Ledger", "LedgerParts", "ReadHere"]

ResultT = TypeVar("ResultT")


class ReadHere(Protocol):
    """Runs a read or a write on the calling thread; None when it cannot (pooled then)."""

    def __call__(self, body: Callable[[Connection], ResultT], /) -> ResultT | None:
        """`body`'s answer, or None: this store has no such connection, or it failed."""


def _nowhere(body: Callable[[Connection], ResultT], /) -> ResultT | None:
    """No read on the calling thread (PostgreSQL, in-memory SQLite): always the pool's."""
    return None


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
