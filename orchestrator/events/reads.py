"""The reads behind a process's watchers, and on a SQLite file a cheaper way to make them.

Every durable event a watcher gets comes from `events_after` (`seq > cursor`, in `seq`
order): the session's feed makes that read once per notice for all its watchers
(`feed`), a watcher behind the window makes it itself. Through aiosqlite each read is
several hand-offs to the driver's thread and back, and each hand-off waits for a turn of
an event loop that, under a crowd, is busy sending tokens. On a SQLite file in WAL mode a
reader never waits for a writer, so `BlockingSqliteReads` reads on the loop's own thread
over one connection it keeps: one short read transaction, no hand-off. Should that read
fail (a lock during a recovery, a file gone), the store's own read runs instead.
"""

from __future__ import annotations

import contextlib
from typing import Final, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.store._engine import create_sync_sqlite_engine, in_memory, parse_url
from orchestrator.store.records import AuditEvent
from orchestrator.store.store import Store
from orchestrator.store.tables import AuditEventRow

__all__ = ["BlockingSqliteReads", "EventReads", "reads_for"]

_EVENTS = AuditEventRow.__table__
_AFTER: Final = (
    sa.select(_EVENTS)
    .where(_EVENTS.c.session_id == sa.bindparam("session_id"))
    .where(_EVENTS.c.seq > sa.bindparam("after"))
    .order_by(_EVENTS.c.seq)
    .limit(sa.bindparam("limit"))
)


class EventReads(Protocol):
    """Where watchers read durable events (`Store.stream` is one)."""

    async def events_after(self, session_id: str, after: int, limit: int) -> list[AuditEvent]:
        """Up to `limit` of the session's events with `seq > after`, in `seq` order."""


class BlockingSqliteReads:
    """`events_after` on the event loop's thread, over a connection of its own (SQLite file).

    The connection waits for no lock (`busy_timeout` 0): a read that would wait fails at
    once, and the store's own read (aiosqlite, in its thread) is made instead.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = create_sync_sqlite_engine(parse_url(store.raw_url))
        self._conn: Connection | None = None

    async def events_after(self, session_id: str, after: int, limit: int) -> list[AuditEvent]:
        """Up to `limit` of the session's events with `seq > after`, in `seq` order."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                self._conn.exec_driver_sql("PRAGMA busy_timeout = 0")
            try:
                params = {"session_id": session_id, "after": after, "limit": limit}
                rows = self._conn.execute(_AFTER, params).all()
            finally:
                # Ends the read at once: the next one sees every commit made since.
                self._conn.rollback()
        except SQLAlchemyError:
            self._drop()
            return await self._store.stream.events_after(session_id, after, limit)
        return [AuditEvent.model_validate(row._mapping) for row in rows]

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()

    def close(self) -> None:
        """Close the connection and the engine."""
        self._drop()
        self._engine.dispose()


def reads_for(store: Store) -> EventReads | BlockingSqliteReads:
    """The cheapest reads for the store: blocking ones on a SQLite file, else its own."""
    if store.dialect != "sqlite" or in_memory(parse_url(store.raw_url)):
        return store.stream
    return BlockingSqliteReads(store)
