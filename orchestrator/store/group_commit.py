"""Group commit: the small writes of many concurrent requests in one transaction each batch.

Every gateway request ends with a few writes: its audit row, and now and then a pin, a
pin event or a session row. A transaction per request pays a commit each time and, on
SQLite through aiosqlite, a hand-off to the driver's thread and back for every statement
and for the commit; 200 concurrent clients then queue on SQLite's single writer.

`GroupCommit.commit` queues a request's writes; one drainer commits everything queued
while the previous transaction ran, in one transaction, then answers every caller. A
caller's await returns only after the transaction holding its writes committed, so
durability is the store's own (no record of an answered request is lost to a crash);
a lone request waits for nothing but its own commit, there is no timer. On a SQLite file a
writer that finds nothing queued and no batch under way commits on the event loop's thread
at once (`GroupCommit._at_once`: one such commit per turn of the loop, never waiting for
another process's write lock), which spares two thread hand-offs on a lightly loaded gateway.

On a SQLite file the transaction runs in one thread over a blocking connection to the
same file, with the store's pragmas: one hand-off per batch. Elsewhere (PostgreSQL, an
in-memory SQLite) it runs on the store's own engine. `read_pin` reads a pin the same way:
on a SQLite file a primary-key lookup on the calling thread, instead of three hand-offs to
aiosqlite's thread, over the connection that commits there: in WAL mode a read never waits
for a writer, and that connection's page cache survives its own commits, where a reader
of its own had to read the pins' pages again after each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from orchestrator.exceptions import EventKeyConflict, StoreError
from orchestrator.store._engine import create_sync_sqlite_engine, describe_error
from orchestrator.store.driver_sql import driver_row as _driver_row
from orchestrator.store.driver_sql import select_where
from orchestrator.store.event_seq import LOCK_SQL, NOTIFY_SQL, lock_params, notify_params
from orchestrator.store.pins import Pin, put_statement
from orchestrator.store.records import AuditEvent, SessionRecord
from orchestrator.store.store import (
    KEEPS_ITS_END,
    Store,
    check_retry,
    event_columns,
    event_insert,
    event_insert_sql,
    event_params,
    session_upsert,
)
from orchestrator.store.tables import ApprovalRow, AuditEventRow, GatewayPinRow, SessionRow

__all__ = [
    "AppendEvent",
    "GroupCommit",
    "LedgerWrite",
    "PutPin",
    "StartSession",
    "Write",
    "sqlite_approval_insert",
    "sqlite_event_insert",
    "sqlite_session_update",
    "start_session_row",
    "stored_event",
]


@dataclass(frozen=True)
class AppendEvent:
    """`Store.append_event`: its result is True if written, False for a true retry."""

    event: AuditEvent


@dataclass(frozen=True)
class StartSession:
    """`Store.record_session_start`: its result is None."""

    record: SessionRecord


@dataclass(frozen=True)
class PutPin:
    """`PinLedger.put`: its result is whether this pin won (False: another process's did)."""

    pin: Pin
    expected_version: int | None


@dataclass(frozen=True)
class LedgerWrite:
    """A ledger's own writes, run in the batch's transaction: its result is None.

    A gateway request's budget spend and its tokens against its rate limit: one commit with
    the request's audit row instead of a transaction each. An exception fails the batch.
    """

    run: Callable[[Connection], object]


Write = AppendEvent | StartSession | PutPin | LedgerWrite
_Result = bool | None | EventKeyConflict


@dataclass(frozen=True)
class _DriverInsert:
    """`event_insert` for SQLite, run on the driver's connection itself.

    The same SQL and the same stored values (each column's own bind processor), without
    SQLAlchemy's per-execution work, which cost several times the insert on every request.
    """

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def run(self, conn: Connection, event: AuditEvent) -> int | None:
        values = event_params(event)
        params = [
            value if process is None else process(value)
            for value, process in zip(
                (values[key] for key in self.keys), self.processors, strict=True
            )
        ]
        row = _driver_row(conn, self.sql, params)
        return None if row is None else int(row[0])


def _pin_on(conn: Connection, session_id: str) -> Pin | None:
    """The session's pin by primary key on the driver's connection (pysqlite), or None.

    pysqlite starts no transaction for a `SELECT`: each read sees every commit made
    before it, with no transaction to end after it.
    """
    read = select_where(conn.dialect, GatewayPinRow.__table__, ("session_id",))
    found = read.row(conn, (session_id,))
    return None if found is None else Pin.model_validate(found)


def _busy(exc: OperationalError) -> bool:
    """Whether SQLite refused for a lock another connection holds (the caller may wait)."""
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


@functools.cache
def sqlite_event_insert(dialect: Dialect) -> _DriverInsert:
    """`event_insert` on the driver's own connection (pysqlite).

    Its `run(conn, event)` gives the new `seq`, or None when the event's key is there.
    """
    columns = event_columns()
    sql = event_insert_sql(lambda _: "?")
    return _DriverInsert(
        sql,
        (*(c.key for c in columns), "seq_session_id"),
        (*(c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns), None),
    )


@dataclass(frozen=True)
class _DriverWrite:
    """A statement of the gateway's own writes, run on the driver's connection (pysqlite).

    `columns` are the table's columns whose values it takes first, each through its own
    bind processor, as SQLAlchemy would store them; then `extra` parameters as they are.
    SQLAlchemy compiles the dialects' `ON CONFLICT` statements anew on every execution.
    """

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def row(self, conn: Connection, values: dict[str, Any], extra: Sequence[object] = ()) -> Any:
        params = [
            values[key] if process is None else process(values[key])
            for key, process in zip(self.keys, self.processors, strict=True)
        ]
        params.extend(extra)
        return _driver_row(conn, self.sql, params)


def _driver_write(dialect: Dialect, table: Any, sql: str) -> _DriverWrite:
    columns = list(table.columns)
    return _DriverWrite(
        sql,
        tuple(c.key for c in columns),
        tuple(c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns),
    )


def _inserting(table: Any, name: str, conflict: str, key: str = "session_id") -> str:
    names = [c.name for c in table.columns]
    return (
        f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        f" ON CONFLICT ({key}) {conflict}"
    )


@functools.cache
def sqlite_approval_insert(dialect: Dialect) -> _DriverWrite:
    """`Store.record_approval_request`'s insert on the driver's connection (pysqlite).

    Its `row(conn, values)` is the request's id when written, or None when a request with
    that id is there (a retry: the row, and any decision on it, stay as they are).
    """
    table, name = ApprovalRow.__table__, ApprovalRow.__tablename__
    conflict = "DO NOTHING RETURNING approval_id"
    return _driver_write(dialect, table, _inserting(table, name, conflict, key="approval_id"))


@functools.cache
def _sqlite_pin_writes(dialect: Dialect) -> tuple[_DriverWrite, _DriverWrite]:
    """The first pin (the first process wins) and a compare-and-set on its version."""
    table, name = GatewayPinRow.__table__, GatewayPinRow.__tablename__
    sets = ", ".join(f"{c.name} = ?" for c in table.columns)
    return (
        _driver_write(dialect, table, _inserting(table, name, "DO NOTHING RETURNING version")),
        _driver_write(
            dialect,
            table,
            f"UPDATE {name} SET {sets} WHERE session_id = ? AND version = ? RETURNING version",
        ),
    )


@functools.cache
def _sqlite_session_start(dialect: Dialect) -> _DriverWrite:
    """`session_upsert`: a known session only gets its `run_id` and `status`.

    Its `row` is the session's id, or None when the row is a session of this run that has
    ended (`KEEPS_ITS_END`: it is left as it is).
    """
    table = SessionRow.__table__
    conflict = (
        "DO UPDATE SET run_id = excluded.run_id, status = excluded.status"
        f"{KEEPS_ITS_END} RETURNING session_id"
    )
    return _driver_write(dialect, table, _inserting(table, SessionRow.__tablename__, conflict))


@functools.lru_cache(maxsize=32)
def sqlite_session_update(
    dialect: Dialect, keys: tuple[str, ...], refused: tuple[str, ...] = ()
) -> _DriverWrite:
    """`Store.update_session`'s change of the columns `keys` on the driver's connection.

    Its `row(conn, changes, (session_id,))` is the session's id, or None when no row has
    it, or when its status is one of `refused` (`records.statuses_refused_for`: enum
    values, spelled in the statement); with no `keys`, a read of that id. Compiling the
    Core `update(...).values(...)` anew cost more than the update on every session's
    close; the callers change only a few sets of columns, so the cache stays small (and
    bounded).

    Raises:
        KeyError: a key is not a column of the sessions' table.
    """
    table = SessionRow.__table__
    columns = [table.c[key] for key in keys]
    name = SessionRow.__tablename__
    if columns:
        sets = ", ".join(f"{c.name} = ?" for c in columns)
        held = ", ".join(f"'{status}'" for status in refused)
        where = f" AND status NOT IN ({held})" if refused else ""
        sql = f"UPDATE {name} SET {sets} WHERE session_id = ?{where} RETURNING session_id"
    else:
        sql = f"SELECT session_id FROM {name} WHERE session_id = ?"
    return _DriverWrite(
        sql,
        keys,
        tuple(c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns),
    )


def _put_pin(conn: Connection, dialect: str, write: PutPin) -> bool:
    if conn.dialect.driver != "pysqlite":
        stmt, _ = put_statement(dialect, write.pin, write.expected_version)
        return conn.execute(stmt).scalar_one_or_none() is not None
    first, change = _sqlite_pin_writes(conn.dialect)
    values = write.pin.model_dump()
    if write.expected_version is None:
        values["version"] = 1
        return first.row(conn, values) is not None
    values["version"] = write.expected_version + 1
    return change.row(conn, values, (write.pin.session_id, write.expected_version)) is not None


def start_session_row(conn: Connection, record: SessionRecord) -> bool:
    """`Store.record_session_start`'s row, in the caller's transaction (pysqlite).

    `InlineEvents` writes a session's start with its first events on the calling thread.
    False: the row is a session of this run that has ended, left as it is.
    """
    return _start_session(conn, "sqlite", record)


def _start_session(conn: Connection, dialect: str, record: SessionRecord) -> bool:
    if conn.dialect.driver != "pysqlite":
        conn.execute(session_upsert(dialect, record))
        return True
    values = record.model_dump()
    values["status"] = record.status.value
    return _sqlite_session_start(conn.dialect).row(conn, values) is not None


def _apply(conn: Connection, dialect: str, write: Write) -> _Result:
    """One write inside the batch's transaction; a key conflict is its result, not a failure."""
    if isinstance(write, StartSession):
        _start_session(conn, dialect, write.record)
        return None
    if isinstance(write, PutPin):
        return _put_pin(conn, dialect, write)
    if isinstance(write, LedgerWrite):
        write.run(conn)
        return None
    event = write.event
    if conn.dialect.driver == "pysqlite":
        seq = sqlite_event_insert(conn.dialect).run(conn, event)
    else:
        if dialect == "postgresql":
            conn.execute(LOCK_SQL, lock_params(event.session_id))
        seq = conn.execute(event_insert(), event_params(event)).scalar_one_or_none()
    if seq is not None:
        if dialect == "postgresql":
            conn.execute(NOTIFY_SQL, notify_params(event.session_id, seq))
        return True
    try:
        check_retry(stored_event(conn, event.event_key), event)
    except EventKeyConflict as exc:
        return exc
    return False


def stored_event(conn: Connection, event_key: str) -> AuditEvent | None:
    """The event stored under `event_key` (read in the caller's transaction), or None."""
    row = (
        conn.execute(select(AuditEventRow.__table__).where(AuditEventRow.event_key == event_key))
        .mappings()
        .first()
    )
    return None if row is None else AuditEvent.model_validate(dict(row))


def _apply_all(
    conn: Connection, dialect: str, batches: list[Sequence[Write]]
) -> list[list[_Result]]:
    return [[_apply(conn, dialect, write) for write in batch] for batch in batches]


_Waiting = tuple[Sequence[Write], "asyncio.Future[list[_Result]]"]


class GroupCommit:
    """Commits queued writes in batches, one transaction per batch.

    Args:
        store: The store written to.
        lock: Held while a batch commits: the caller's lock around its other writes to a
            SQLite file, so this process never meets its own write lock (a SQLite writer
            that finds the lock taken sleeps in steps of up to 100 ms).
    """

    def __init__(self, store: Store, lock: asyncio.Lock | None = None) -> None:
        self._store = store
        self._dialect = store.dialect
        self._lock = lock
        url = store.engine.url
        database = url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file:")
        self._sync = (
            create_sync_sqlite_engine(url) if self._dialect == "sqlite" and not in_memory else None
        )
        self._thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
            if self._sync is not None
            else None
        )
        self._reader: Connection | None = None
        self._inline: Connection | None = None
        """Commits on the event loop's thread when nothing is queued (see `_at_once`)."""
        self._inline_open = True
        """False from a commit on the loop's thread to the loop's next turn."""
        self._writer: Connection | None = None
        """Used in the writer thread only."""
        self._waiting: list[_Waiting] = []
        self._drainer: asyncio.Task[None] | None = None

    async def commit(self, writes: Sequence[Write]) -> list[bool | None]:
        """Write `writes` in the next batch; return once that batch committed.

        Returns:
            Each write's result, in order (see the write classes).

        Raises:
            EventKeyConflict: an event's key holds a different event (the other writes of
                the batch are committed).
            StoreError: the batch's transaction failed; nothing of it was written.
        """
        results = self._at_once(writes)
        if results is None:
            future: asyncio.Future[list[_Result]] = asyncio.get_running_loop().create_future()
            self._waiting.append((writes, future))
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.create_task(self._drain(), name="group-commit")
            # Shielded: a caller that goes away must not cancel the batch other callers share.
            results = await asyncio.shield(future)
        out: list[bool | None] = []
        for result in results:
            if isinstance(result, EventKeyConflict):
                raise result
            out.append(result)
        return out

    def _at_once(self, writes: Sequence[Write]) -> list[_Result] | None:
        """Commit `writes` now on this thread, when nothing is queued and no one writes.

        On a SQLite file with no batch under way and this process's write lock free, a
        request's writes are one short transaction: committing it here spares the hand-off
        to the writer thread and back (two wake-ups, each a wait for a time slice on a
        loaded machine). One such commit per turn of the event loop: writers that come in
        the same turn (answers that arrived together) queue and share the next batch. The
        connection does not wait for SQLite's write lock: if another process holds it,
        None, and the writes go to the queue as before.

        Raises:
            StoreError: the transaction failed otherwise; nothing of it was written.
        """
        if (
            self._sync is None
            or not self._inline_open
            or self._waiting
            or (self._drainer is not None and not self._drainer.done())
            or (self._lock is not None and self._lock.locked())
        ):
            return None
        self._inline_open = False
        asyncio.get_running_loop().call_soon(self._reopen)
        try:
            inline = self._inline_connection(self._sync)
            with inline.begin():
                return _apply_all(inline, self._dialect, [writes])[0]
        except OperationalError as exc:
            if _busy(exc):
                return None
            self._drop_inline()
            raise self._error("commit gateway writes", exc) from exc
        except SQLAlchemyError as exc:
            self._drop_inline()
            raise self._error("commit gateway writes", exc) from exc

    def _inline_connection(self, sync: Engine) -> Connection:
        """The loop thread's connection to the file, which never waits for a lock."""
        if self._inline is None:
            self._inline = sync.connect()
            self._inline.exec_driver_sql("PRAGMA busy_timeout = 0")
            self._inline.commit()
        return self._inline

    def _reopen(self) -> None:
        self._inline_open = True

    def _drop_inline(self) -> None:
        inline, self._inline = self._inline, None
        if inline is not None:
            with contextlib.suppress(SQLAlchemyError):
                inline.close()

    async def read_pin(self, session_id: str) -> Pin | None:
        """The session's pin, as `PinLedger.get` reads it."""
        if self._sync is None:
            return await self._store.pins.get(session_id)
        done, pin = self._read_inline(session_id)
        if done:
            return pin
        try:
            if self._reader is None:
                self._reader = self._sync.connect()
            return _pin_on(self._reader, session_id)
        except SQLAlchemyError as exc:
            reader, self._reader = self._reader, None
            if reader is not None:
                with contextlib.suppress(SQLAlchemyError):
                    reader.close()
            raise self._error("read gateway pin", exc) from exc

    def _read_inline(self, session_id: str) -> tuple[bool, Pin | None]:
        """The pin read on the connection that commits on this thread: (read, the pin).

        SQLite drops a connection's page cache whenever another connection has committed
        since its last read: a reader of its own re-read the pins' pages after every
        request's commit. The connection that wrote them keeps them. It never waits for a
        lock; in WAL mode a read needs none, but should SQLite still answer busy (another
        connection in exclusive locking mode, a recovery under way), `read` is False and the
        kept read connection, which waits, reads instead.

        Raises:
            StoreError: the read failed otherwise.
        """
        if self._sync is None:
            return False, None
        try:
            pin = _pin_on(self._inline_connection(self._sync), session_id)
        except OperationalError as exc:
            if _busy(exc):
                return False, None
            self._drop_inline()
            raise self._error("read gateway pin", exc) from exc
        except SQLAlchemyError as exc:
            self._drop_inline()
            raise self._error("read gateway pin", exc) from exc
        return True, pin

    async def aclose(self) -> None:
        """Wait for queued writes, then close the thread and the blocking engine."""
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._drop_inline()
        if self._thread is not None:
            if self._writer is not None:
                writer = self._writer
                await asyncio.get_running_loop().run_in_executor(self._thread, writer.close)
                self._writer = None
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()

    async def _drain(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            batches = [writes for writes, _ in taken]
            try:
                async with self._lock if self._lock is not None else contextlib.nullcontext():
                    results = await self._run(batches)
            except Exception as exc:
                error = exc if isinstance(exc, StoreError) else self._error("commit", exc)
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _run(self, batches: list[Sequence[Write]]) -> list[list[_Result]]:
        if self._sync is not None and self._thread is not None:
            sync = self._sync

            def work() -> list[list[_Result]]:
                # The writer thread keeps its connection: no pool checkout and reset per batch.
                if self._writer is None:
                    self._writer = sync.connect()
                try:
                    with self._writer.begin():
                        return _apply_all(self._writer, self._dialect, batches)
                except SQLAlchemyError:
                    self._writer.close()
                    self._writer = None
                    raise

            try:
                return await asyncio.get_running_loop().run_in_executor(self._thread, work)
            except SQLAlchemyError as exc:
                raise self._error("commit gateway writes", exc) from exc
        try:
            async with self._store.engine.begin() as conn:
                return await conn.run_sync(_apply_all, self._dialect, batches)
        except SQLAlchemyError as exc:
            raise self._error("commit gateway writes", exc) from exc

    def _error(self, action: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"store could not {action} ({self._store.url}): "
            f"{describe_error(exc, self._store.engine.url)}"
        )
