"""Audit events committed on the event loop's own thread, on a SQLite file.

Through aiosqlite every statement of `Store.append_events` is a hand-off to the driver's
thread and back: the transaction's start, the insert, the commit and the connection's reset
on return to the pool, each a wake-up of two threads (on a loaded machine, a wait for a time
slice). The session worker writes one or two events per model or tool call, so these
hand-offs were a large part of what a step costs beyond bare Temporal. A write of a few
rows to a SQLite file in WAL mode with `synchronous=NORMAL` takes a fraction of a
millisecond, so `InlineEvents` runs it on the calling thread, in one transaction, over a
connection of its own. The commit is not delayed and not batched with anyone else's: the
caller returns once its own events are committed, as before.

The connection never waits for SQLite's write lock (`busy_timeout = 0`): when another
connection (another process, or this store's own pool mid-transaction) holds it, or the
connection fails, `append` answers None and the store takes its usual path, which waits.

The same connection serves the ledgers' writes on a gateway request's path (`write`: budget
reservations and spend, rate counts), each one short transaction that never waits for the
lock either, and the ledgers' reads on a session's start path (`read`: the
router's outcome tallies, a session's budget scopes), which through the pool cost a
hand-off per statement too. A WAL reader never waits for a writer, so a read here is one
short transaction on the calling thread; should it fail, the ledger reads through the pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from orchestrator.store._engine import create_sync_sqlite_engine, sqlite_lock_held
from orchestrator.store.group_commit import (
    sqlite_approval_insert,
    sqlite_event_insert,
    sqlite_session_update,
    start_session_row,
    stored_event,
)
from orchestrator.store.records import (
    AuditEvent,
    SessionRecord,
    SessionStatus,
    statuses_refused_for,
)
from orchestrator.store.store import check_retry, refuse_ended, status_of

__all__ = ["InlineEvents"]

ResultT = TypeVar("ResultT")


class InlineEvents:
    """`Store.append_events` (and the ledgers' `read`s) on a SQLite file, on the calling thread.

    One connection, used only by the first thread that writes through it (pysqlite
    connections belong to their thread); calls from any other thread answer None.
    """

    def __init__(self, url: URL) -> None:
        self._engine = create_sync_sqlite_engine(url)
        self._conn: Connection | None = None
        self._owner: int | None = None

    def append(
        self, events: Sequence[AuditEvent], *, start: SessionRecord | None = None
    ) -> tuple[list[bool], dict[str, int]] | None:
        """Insert `events` in one transaction, in order, all or nothing.

        With `start`, the session's row is recorded first, in the same transaction
        (`Store.record_session_start`).

        Returns:
            Whether each was written (False: a retry wrote the same event before), and the
            newest `seq` written per session; None when this thread cannot write here now
            (the file's write lock is taken, the connection failed, another thread).

        Raises:
            EventKeyConflict: an event's key holds a different event; nothing is written.
            SessionEnded: `start`'s run ended its session; nothing is written.
            SQLAlchemyError: the database failed otherwise; nothing is written.
        """

        def body(conn: Connection) -> tuple[list[bool], dict[str, int]]:
            if start is not None and not start_session_row(conn, start):
                held = conn.execute(status_of(start.session_id)).scalar()
                refuse_ended(start.session_id, held, start.status.value)
            return _insert_events(conn, events)

        return self._transaction(body)

    def update_session(
        self,
        session_id: str,
        changes: Mapping[str, object],
        events: Sequence[AuditEvent],
        *,
        approval: Mapping[str, object] | None = None,
    ) -> tuple[bool, dict[str, int]] | None:
        """`Store.update_session` in one transaction: `events` first, then the row's `changes`.

        A session's close (its last events, its closing event and its row) is one commit
        on the calling thread, as its start is: through the pool each of its statements
        was a hand-off to the driver's thread on the path from the last answer to the end.
        So is an approval request (`approval`, an `approvals` row's values, inserted before
        the events unless its id is there) with its events and the session's status.

        Returns:
            Whether the session's row exists, and the newest `seq` written per session;
            None when this thread cannot write here now (as `append`).

        Raises:
            EventKeyConflict: an event's key holds a different event; nothing is written.
            SessionEnded: the session has ended otherwise; nothing is written.
            SQLAlchemyError: the database failed otherwise; nothing is written.
        """
        keys = tuple(changes)
        wanted = changes.get("status")
        refused = statuses_refused_for(SessionStatus(wanted) if isinstance(wanted, str) else None)

        def body(conn: Connection) -> tuple[bool, dict[str, int]]:
            if approval is not None:
                sqlite_approval_insert(conn.dialect).row(conn, dict(approval))
            _, moved = _insert_events(conn, events)
            found = sqlite_session_update(conn.dialect, keys, refused).row(
                conn, dict(changes), (session_id,)
            )
            if found is None and refused:
                refuse_ended(session_id, conn.execute(status_of(session_id)).scalar(), wanted)
            return found is not None, moved

        return self._transaction(body)

    def write(self, body: Callable[[Connection], ResultT]) -> ResultT | None:
        """`body`'s writes in one transaction on this thread; None if they cannot run here now.

        The ledgers' writes on a gateway request's path (budget reservations and spend,
        rate counts) take it (`LedgerParts.write_here`). None when the file's write lock is
        taken, the connection failed or belongs to another thread: the caller's pooled
        write then runs, and waits. An exception of `body`'s own goes to the caller, and
        nothing of the transaction is written.
        """
        return self._transaction(body)

    def read(self, body: Callable[[Connection], ResultT]) -> ResultT | None:
        """`body`'s reads in one short transaction on this thread; None if it cannot run here.

        Any database failure answers None (after a lock, the connection is kept; otherwise
        a new one is made next time): the caller's pooled read then runs, and reports it.
        """
        return self._transaction(body, answers_none_on=SQLAlchemyError)

    def _transaction(
        self,
        body: Callable[[Connection], ResultT],
        *,
        answers_none_on: type[SQLAlchemyError] = OperationalError,
    ) -> ResultT | None:
        """`body` in one transaction on this thread's connection; None if it cannot run.

        A write answers None on the driver's operational errors only: an error of its own
        (a conflicting key) goes to the caller.
        """
        owner = threading.get_ident()
        if self._owner is None:
            self._owner = owner
        elif self._owner != owner:
            return None
        try:
            conn = self._connection()
            with conn.begin():
                return body(conn)
        except answers_none_on as exc:
            # Locked or busy (another writer): the store's own path waits for the lock. Any
            # other failure: a new connection next time, and the store's path reports it.
            if not (isinstance(exc, OperationalError) and _locked(exc)):
                self._drop()
            return None

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            conn.exec_driver_sql("PRAGMA busy_timeout = 0")
            conn.commit()
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()

    def close(self) -> None:
        """Close the connection (from its thread) and the engine."""
        if self._owner in (None, threading.get_ident()):
            self._drop()
        self._engine.dispose()


def _insert_events(
    conn: Connection, events: Sequence[AuditEvent]
) -> tuple[list[bool], dict[str, int]]:
    """Insert `events` in the caller's transaction, in order; a retry's same event is kept.

    Returns whether each was written and the newest `seq` written per session.

    Raises:
        EventKeyConflict: an event's key holds a different event.
    """
    insert = sqlite_event_insert(conn.dialect)
    written: list[bool] = []
    moved: dict[str, int] = {}
    for event in events:
        seq = insert.run(conn, event)
        written.append(seq is not None)
        if seq is not None:
            moved[event.session_id] = seq
    for event, new in zip(events, written, strict=True):
        if not new:
            check_retry(stored_event(conn, event.event_key), event)
    return written, moved


def _locked(exc: OperationalError) -> bool:
    """Whether the driver's error is SQLite's busy or locked (extended codes included)."""
    return sqlite_lock_held(exc.orig)
