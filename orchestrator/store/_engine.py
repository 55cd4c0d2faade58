"""Engine construction shared by the store and its migrations.

One place decides how a URL becomes an engine, so the worker, the CLI and `migrate` open
the database the same way: SQLite in WAL mode with a busy timeout (several processes share
one file), PostgreSQL with pre-ping (a long-lived worker outlives database restarts).
It also owns turning a URL into text for messages, so no password ever reaches a log line.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor, Dialect
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from orchestrator.exceptions import StoreError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "STORE_POOL",
    "SUPPORTED_BACKENDS",
    "PoolSize",
    "create_store_engine",
    "create_sync_sqlite_engine",
    "describe_error",
    "in_memory",
    "parse_url",
    "safe_url",
    "sqlite_lock_held",
]

SUPPORTED_BACKENDS: Final = frozenset({"sqlite", "postgresql"})
"""Backends whose upsert syntax the store speaks (`INSERT ... ON CONFLICT`)."""


@dataclass(frozen=True)
class PoolSize:
    """How many connections a store's engine keeps open, and how many more it may open."""

    size: int
    overflow: int


STORE_POOL: Final = PoolSize(size=5, overflow=10)
"""The store's pool: SQLAlchemy's default sizing, kept on measurement (issue 16 item 7,
`bench/store_pool.py`, 50-200 concurrent sessions): 10 + 30 connections cut SQLite's
throughput (its writers queue on the file lock, now in SQLite's busy handler instead of
the pool) and gave PostgreSQL no steady gain. No checkout timed out with either."""

SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
"""How long a SQLite writer waits for another process's lock before failing."""

_WAL_PRAGMA: Final = "PRAGMA journal_mode = WAL"

_SQLITE_PRAGMAS: Final = (
    # Busy timeout first: switching to WAL needs a lock another process may hold.
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    # WAL lets readers (CLI, API) run while the worker writes (see `_enter_wal`).
    _WAL_PRAGMA,
    # Durable across application crashes in WAL mode; only an OS crash can lose the tail.
    "PRAGMA synchronous = NORMAL",
)

_WAIT_CODES: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
"""SQLite's primary result codes for "another connection holds the lock"."""


def sqlite_lock_held(exc: BaseException | None) -> bool:
    """Whether a `sqlite3` error is SQLite's busy or locked (extended codes included)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _WAIT_CODES


_WAL_RETRY_S: Final = 0.005
"""The pause between two tries of the switch to WAL while another connection holds the file."""


def _enter_wal(cursor: DBAPICursor) -> None:
    """Switch the file to WAL, waiting out another connection that holds it meanwhile.

    On a new file, two connections switching it at once (two stores in one process, or an
    API and a worker opening a new project together) make SQLite answer one of them
    SQLITE_BUSY at once, without its busy handler (23 of 300 racing pairs of plain `sqlite3`
    connections here): `busy_timeout` does not cover this pragma. So it is tried again every
    few milliseconds, for as long as the busy timeout would have waited.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute(_WAL_PRAGMA)
            return
        except sqlite3.OperationalError as exc:
            if not sqlite_lock_held(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_S)


def parse_url(url: str) -> URL:
    """Parse a database URL without ever echoing it.

    SQLAlchemy's own parse error quotes the whole string, password included.

    Raises:
        StoreError: The string is not a SQLAlchemy URL.
    """
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError(
            "database URL is not a valid SQLAlchemy URL "
            "(expected e.g. sqlite+aiosqlite:///path/to/file.db)"
        ) from None


def safe_url(url: str | URL) -> str:
    """The URL as text fit for messages and logs: the password is masked."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<invalid database URL>"
    return parsed.render_as_string(hide_password=True)


def describe_error(exc: BaseException, url: URL) -> str:
    """A one-line reason for a database failure, with any password scrubbed.

    DBAPI errors are reduced to the driver's message: SQLAlchemy's full text carries the
    SQL and its bound parameters, which may hold approval arguments or payloads.
    """
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    text = f"{type(cause).__name__}: {cause}".splitlines()[0]
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def create_store_engine(url: str, *, pool: PoolSize = STORE_POOL) -> AsyncEngine:
    """Build the async engine for a store URL.

    Args:
        url: SQLAlchemy URL with an async driver, e.g. `sqlite+aiosqlite:///state/x.db`
            or `postgresql+asyncpg://user:pw@host/db`.
        pool: The connection pool's size (a file or server database; in-memory SQLite
            keeps SQLAlchemy's own pool).

    Raises:
        StoreError: The URL is invalid, names an unsupported backend, or a driver that is
            not installed or not async.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(
            f"database backend {backend!r} is not supported by the store "
            f"(use one of {sorted(SUPPORTED_BACKENDS)}): {safe_url(parsed)}"
        )
    try:
        engine = create_async_engine(parsed, **_engine_options(parsed, backend, pool))
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"cannot open store at {safe_url(parsed)}: {describe_error(exc, parsed)} "
            "(the store needs an async driver such as sqlite+aiosqlite or postgresql+asyncpg)"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine.sync_engine, parsed)
    return engine


def create_sync_sqlite_engine(url: URL) -> Engine:
    """A blocking engine on the same SQLite file as a store URL, with the same pragmas.

    For work that runs whole transactions in one thread (`orchestrator.store.group_commit`):
    through aiosqlite every statement is a hand-off to its thread and back.
    """
    engine = create_engine(url.set(drivername="sqlite+pysqlite"))
    _configure_sqlite(engine, url)
    return engine


def _engine_options(url: URL, backend: str, pool: PoolSize) -> dict[str, object]:
    options: dict[str, object] = {"pool_pre_ping": backend == "postgresql"}
    if not in_memory(url):
        options.update(pool_size=pool.size, max_overflow=pool.overflow)
    return options


def in_memory(url: URL) -> bool:
    """Whether a SQLite URL names an in-memory database (no file to share)."""
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file:")


def _configure_sqlite(engine: Engine, url: URL) -> None:
    """Create the file's folder lazily and set pragmas on every new connection."""
    database = url.database or ""
    memory = in_memory(url)

    @event.listens_for(engine, "do_connect")
    def _make_parent(
        dialect: Dialect,
        conn_rec: ConnectionPoolEntry,
        cargs: tuple[object, ...],
        cparams: dict[str, object],
    ) -> None:
        # A fresh state folder is normal (first run, new project); SQLite will not make it.
        if not memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: DBAPIConnection, conn_rec: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                if pragma == _WAL_PRAGMA:
                    _enter_wal(cursor)
                else:
                    cursor.execute(pragma)
        finally:
            cursor.close()
