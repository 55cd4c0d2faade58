"""What every ledger of the store is built from: its sessions, dialect and error wrapper.

`Store` owns one engine; each ledger (`budgets`, `pins`, `notices`, `outcomes`, `cache`)
and each set of reads (`reports`, `stream`, `queue`) works on it through the same three
parts, handed over as one `LedgerParts`, so a new one is a subclass of `Ledger` and one
line in `Store.__init__`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.store.tables import Base

__all__ = ["Ledger", "LedgerParts"]


@dataclass(frozen=True)
class LedgerParts:
    """The store's parts a ledger works with."""

    sessions: async_sessionmaker[AsyncSession]
    """Opens a database session on the store's engine."""
    dialect: str
    """The engine's dialect name (`sqlite` or `postgresql`): upserts differ between them."""
    errors: Callable[[str], AbstractContextManager[None]]
    """`errors("do something")` turns database failures inside it into `StoreError`."""


class Ledger:
    """Base of the store's ledgers: keeps the parts where every ledger method finds them."""

    def __init__(self, parts: LedgerParts) -> None:
        self._sessions = parts.sessions
        self._dialect = parts.dialect
        self._errors = parts.errors

    def _insert(self, table: type[Base]) -> sqlite.Insert:
        """An `INSERT` into `table` in the dialect's flavour, for its `ON CONFLICT` clauses.

        Typed as SQLite's: both flavours have the same `on_conflict_*` methods.
        """
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return insert(table)  # type: ignore[return-value]
