"""What every ledger of the store is built from: its sessions, dialect and error wrapper.

`Store` owns one engine; each ledger (`budgets`, `pins`, `notices`, `outcomes`, `cache`)
and each set of reads (`reports`, `stream`, `queue`) works on it through the same three
parts, handed over as one `LedgerParts`, so a new one is a subclass of `Ledger` and one
line in `Store.__init__`. On a SQLite file a fourth part, `read_here`, runs a read on the
calling thread (`orchestrator.store.inline_events`); elsewhere it declines and the ledger
reads through its sessions.
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
    """Runs a read on the calling thread, or answers None when it cannot (read pooled then)."""

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


class Ledger:
    """Base of the store's ledgers: keeps the parts where every ledger method finds them."""

    def __init__(self, parts: LedgerParts) -> None:
        self._sessions = parts.sessions
        self._dialect = parts.dialect
        self._errors = parts.errors
        self._read_here = parts.read_here

    def _insert(self, table: type[Base]) -> sqlite.Insert:
        """An `INSERT` into `table` in the dialect's flavour, for its `ON CONFLICT` clauses.

        Typed as SQLite's: both flavours have the same `on_conflict_*` methods.
        """
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return insert(table)  # type: ignore[return-value]
