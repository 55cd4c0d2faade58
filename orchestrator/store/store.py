"""The session, audit and approval store.

Activities write through it, the CLI and HTTP API read through it, often from separate
processes at the same time. Every write is therefore built to survive two things:

- Retries. Temporal re-runs an activity that timed out after it may already have
  written, so each write is idempotent on its natural key (`session_id`, `event_key`,
  `approval_id`) and totals are set, never added.
- Races. An approval can be decided from the inbox and the CLI at once; the decision is a
  single conditional `UPDATE`, so exactly one caller wins on SQLite and PostgreSQL alike.

Everything that goes wrong below surfaces as `StoreError`, whose message names the
operation and the database (password masked), never the SQL parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    String,
    TextClause,
    TextualSelect,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import KeyedColumnElement

from orchestrator.exceptions import EventKeyConflict, SessionEnded, StoreError
from orchestrator.store._engine import (
    STORE_POOL,
    PoolSize,
    create_store_engine,
    describe_error,
    in_memory,
    parse_url,
    safe_url,
)
from orchestrator.store.budgets import BudgetLedger, Spend
from orchestrator.store.driver_sql import select_where
from orchestrator.store.event_seq import lock_session_events, notify_event
from orchestrator.store.ledger import LedgerParts
from orchestrator.store.migrate import upgrade_engine
from orchestrator.store.notices import NoticeLedger
from orchestrator.store.outcomes import OutcomeLedger
from orchestrator.store.pins import PinLedger
from orchestrator.store.queue_reads import QueueReads
from orchestrator.store.rate_windows import RateLedger
from orchestrator.store.records import (
    ENDED,
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
    event_differences,
    statuses_refused_for,
)
from orchestrator.store.reports import Reports
from orchestrator.store.response_cache import CacheLedger
from orchestrator.store.stream_reads import StreamReads
from orchestrator.store.tables import ApprovalRow, AuditEventRow, Base, SessionRow
from orchestrator.types import JsonValue

if TYPE_CHECKING:
    from orchestrator.store.inline_events import InlineEvents

__all__ = [
    "KEEPS_ITS_END",
    "UNSET",
    "Store",
    "check_retry",
    "event_insert",
    "event_params",
    "refuse_ended",
    "session_start_insert",
    "session_upsert",
    "status_of",
]


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of `Store.update_session(output=...)`: leave the output as it is.

Needed because `None` is a valid output to store.
"""

_Insert = sqlite.Insert | postgresql.Insert
_R = TypeVar("_R", SessionRecord, AuditEvent, ApprovalRecord)
_T = TypeVar("_T")


class Store:
    """Async access to sessions, audit events and approvals in one database.

    Each instance owns its engine (and connection pool); close it when done, or use it as
    an async context manager. Instances in several processes may share one SQLite file.

    Example:
        ```python
        async with await Store.open("sqlite+aiosqlite:///state/orchestrator.db") as store:
            await store.append_event(event)
        ```
    """

    def __init__(self, url: str, *, pool: PoolSize = STORE_POOL) -> None:
        """Prepare a store for `url` without connecting or migrating.

        Args:
            url: SQLAlchemy async URL (`sqlite+aiosqlite:///...`, `postgresql+asyncpg://...`).
            pool: Its connection pool's size (the default suits a worker of hundreds of
                sessions).

        Raises:
            StoreError: The URL is invalid or its backend or driver is unsupported.
        """
        self._url = parse_url(url)
        self._engine = create_store_engine(url, pool=pool)
        self._dialect: str = self._engine.dialect.name
        self._inline: InlineEvents | None = None
        """Audit events committed on the caller's thread (a SQLite file: `inline_events`)."""
        self._inline_wanted = self._dialect == "sqlite" and not in_memory(self._url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        parts = LedgerParts(
            self._sessions,
            self._engine.dialect.name,
            self._errors,
            self._read_here,
            self._write_here,
        )
        self.budgets = BudgetLedger(parts)
        """Budget reservations and spend (see `orchestrator.store.budgets`)."""
        self.pins = PinLedger(parts)
        """Gateway sessions' pinned deployments (see `orchestrator.store.pins`)."""
        self.rates = RateLedger(parts)
        """Gateway keys' request and token counts (see `orchestrator.store.rate_windows`)."""
        self.notices = NoticeLedger(parts)
        """Notices to approvers (see `orchestrator.store.notices`)."""
        self.outcomes = OutcomeLedger(parts)
        """Outcome signals the router learns from (see `orchestrator.store.outcomes`)."""
        self.cache = CacheLedger(parts)
        """Remembered model answers (see `orchestrator.store.response_cache`)."""
        self.reports = Reports(parts)
        """Spend and events across sessions (see `orchestrator.store.reports`)."""
        self.stream = StreamReads(parts)
        """Reads behind the live event stream (see `orchestrator.store.stream_reads`)."""
        self.queue = QueueReads(parts)
        """Reads behind the approval queue (see `orchestrator.store.queue_reads`)."""
        self.on_events_committed: Callable[[Mapping[str, int]], None] | None = None
        """Told after each commit of audit events through this instance, with the newest
        `seq` written per session: the embedded worker tells API processes at once
        (`orchestrator.events.udp`). It must neither block nor raise."""

    @property
    def dialect(self) -> str:
        """The backend's name: `sqlite` or `postgresql`."""
        return self._dialect

    @property
    def engine(self) -> AsyncEngine:
        """The store's engine, for writers that batch statements (`group_commit`)."""
        return self._engine

    @property
    def raw_url(self) -> str:
        """The database URL with its password, for a listener connection of its own.

        Never log it; `url` is the masked form.
        """
        return self._url.render_as_string(hide_password=False)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, pool: PoolSize = STORE_POOL) -> Self:
        """Create a store and, unless told not to, bring its schema up to date.

        Raises:
            StoreError: The URL is unusable or the migration failed.
        """
        store = cls(url, pool=pool)
        if migrate:
            try:
                await store.migrate()
            except BaseException:
                await store.close()
                raise
        return store

    @property
    def url(self) -> str:
        """The database URL with its password masked, fit for logs."""
        return safe_url(self._url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    async def migrate(self) -> None:
        """Upgrade the schema to the newest revision; a no-op when it is current.

        Safe to await from async code and to run from several processes at once.

        Raises:
            StoreError: The database is unreachable or a migration failed.
        """
        await upgrade_engine(self._engine)

    async def close(self) -> None:
        """Close every pooled connection. The store may not be used afterwards."""
        inline, self._inline, self._inline_wanted = self._inline, None, False
        if inline is not None:
            inline.close()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Sessions

    async def record_session_start(
        self, rec: SessionRecord, *, events: Sequence[AuditEvent] = ()
    ) -> None:
        """Record that a session started, and its first `events`, in one transaction.

        Idempotent on `session_id`: if the session exists (a retried activity, or a new
        run of the same session), only its `run_id` and `status` are updated; a run's
        session that has ended is not reopened by that run (`KEEPS_ITS_END`). `events`
        are appended after the row, as `append_events` does (a retry rewrites none), so a
        session's start is one commit (on a SQLite file, on the calling thread when the
        write lock is free, as `append_events`).

        Raises:
            EventKeyConflict: an event's key holds a different event; nothing is written.
            SessionEnded: this run's session has ended; nothing is written.
        """
        inline = self._inline_events()
        if inline is not None:
            with self._errors("record session start"):
                done = inline.append(events, start=rec)
            if done is not None:
                self._committed(done[1])
                return
        moved: dict[str, int] = {}
        with self._errors("record session start"):
            async with self._sessions.begin() as session:
                started = await session.execute(session_start_insert(), _values(rec))
                if started.scalar() is None:
                    held = await session.scalar(status_of(rec.session_id))
                    refuse_ended(rec.session_id, held, rec.status.value)
                await self._append_in(session, events, moved)
        self._committed(moved)

    async def update_session(
        self,
        session_id: str,
        *,
        status: SessionStatus | None = None,
        output: JsonValue | Literal[_Unset.UNSET] = UNSET,
        error: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        ended_at: datetime | None = None,
        events: Sequence[AuditEvent] = (),
        approval: ApprovalRecord | None = None,
    ) -> None:
        """Set the given fields of a session; fields left at their default are unchanged.

        Token counts and cost are absolute totals, not increments, so writing them again
        after a retry gives the same result. `events` are appended first, in the same
        transaction, as `append_events` does (a session's close is one commit; on a SQLite
        file, on the calling thread when the write lock is free, as `append_events`).

        An ended session's status is kept: writing another end over it, or a status that
        would reopen it, is refused (`records.statuses_refused_for`), with its events.

        `approval` is a request recorded before the events, in that transaction, as
        `record_approval_request` records it (a retry never resets a decision): a request,
        its events and the session's status are one commit, taken like theirs. Apart, the
        request went through the pool, whose transaction holds SQLite's write lock across
        hand-offs to the driver's thread; a burst of requests queued there, inside the
        local activity that writes them, and held their workflow tasks open over 5 s
        (bench/README.md, "The gated call's request in one commit").

        Raises:
            StoreError: The session does not exist, or the database failed.
            EventKeyConflict: an event's key holds a different event; nothing is written.
            SessionEnded: the session has ended otherwise; nothing is written.
        """
        given: dict[str, object] = {
            "status": status.value if status is not None else None,
            "error": error,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
            "ended_at": ended_at,
        }
        changes = {name: value for name, value in given.items() if value is not None}
        if output is not UNSET:
            changes["output"] = output
        inline = self._inline_events()
        if inline is not None:
            with self._errors("update session"):
                done = inline.update_session(
                    session_id,
                    changes,
                    events,
                    approval=None if approval is None else _values(approval),
                )
            if done is not None:
                self._committed(done[1])
                await _yield()
                if not done[0]:
                    raise StoreError(f"cannot update session {session_id!r}: it does not exist")
                return
        moved: dict[str, int] = {}
        refused = statuses_refused_for(status)
        with self._errors("update session"):
            async with self._sessions.begin() as session:
                if approval is not None:
                    await session.execute(self._approval_insert(approval))
                await self._append_in(session, events, moved)
                if changes:
                    stmt = (
                        update(SessionRow)
                        .where(SessionRow.session_id == session_id)
                        .values(changes)
                        .returning(SessionRow.session_id)
                        .execution_options(synchronize_session=False)
                    )
                    if refused:
                        stmt = stmt.where(SessionRow.status.not_in(refused))
                    found = (await session.execute(stmt)).scalar_one_or_none()
                    if found is None and refused:
                        held = await session.scalar(status_of(session_id))
                        refuse_ended(session_id, held, status.value if status else None)
                else:
                    found = await session.scalar(
                        select(SessionRow.session_id).where(SessionRow.session_id == session_id)
                    )
        self._committed(moved)
        if found is None:
            raise StoreError(f"cannot update session {session_id!r}: it does not exist")

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None if it was never recorded."""
        with self._errors("read session"):
            async with self._sessions() as session:
                row = await session.get(SessionRow, session_id)
                return None if row is None else _record(SessionRecord, row)

    async def list_sessions(
        self, *, limit: int = 50, status: SessionStatus | None = None, tenant: str | None = None
    ) -> list[SessionRecord]:
        """The newest sessions first, optionally only those in one status or of one tenant.

        Raises:
            StoreError: `limit` is below 1, or the database failed.
        """
        if limit < 1:
            raise StoreError(f"list_sessions limit must be at least 1, got {limit}")
        stmt = select(SessionRow).order_by(
            SessionRow.started_at.desc(), SessionRow.session_id.desc()
        )
        if status is not None:
            stmt = stmt.where(SessionRow.status == status.value)
        if tenant is not None:
            stmt = stmt.where(SessionRow.tenant == tenant)
        with self._errors("list sessions"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt.limit(limit))).all()
                return [_record(SessionRecord, row) for row in rows]

    async def session_statuses(self, session_ids: Collection[str]) -> dict[str, SessionStatus]:
        """The status of each of these sessions the store has, by id; unknown ids are absent.

        Two columns, no row objects: what a watcher of hundreds of sessions polls (the load
        driver, in the worker's own process) without building every row as `list_sessions`
        does.
        """
        if not session_ids:
            return {}
        stmt = select(SessionRow.session_id, SessionRow.status).where(
            SessionRow.session_id.in_(list(session_ids))
        )
        with self._errors("read session statuses"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        return {session_id: SessionStatus(status) for session_id, status in rows}

    # Audit events

    async def append_event(self, event: AuditEvent) -> bool:
        """Append an audit event unless the same event is already there under its key.

        `event.id` and `event.seq` are ignored; the store assigns them. `seq` is the
        session's next number, taken in the inserting statement under a per-session lock
        (SQLite's write lock; an advisory lock on PostgreSQL), so a session's events
        commit in `seq` order and a reader that has seen `seq` N has seen 1..N. On
        PostgreSQL the commit also notifies `orchestrator.events.notify.CHANNEL`.

        Returns:
            True if written; False if a retry wrote it before (same key, same content
            by `event_differences`: nothing changed).

        Raises:
            EventKeyConflict: the key holds a different event; nothing is written.
        """
        inline = self._inline_events()
        if inline is not None:
            with self._errors("append audit event"):
                done = inline.append([event])
            if done is not None:
                self._committed(done[1])
                await _yield()
                return done[0][0]
        stmt = event_insert()
        with self._errors("append audit event"):
            async with self._sessions.begin() as session:
                await lock_session_events(session, self.dialect, event.session_id)
                seq = (await session.execute(stmt, event_params(event))).scalar_one_or_none()
                if seq is not None:
                    await notify_event(session, self.dialect, event.session_id, seq)
                else:
                    row = await session.scalar(
                        select(AuditEventRow).where(AuditEventRow.event_key == event.event_key)
                    )
                    stored = None if row is None else _record(AuditEvent, row)
        if seq is not None:
            self._committed({event.session_id: seq})
            return True
        check_retry(stored, event)
        return False

    async def append_events(
        self, events: Sequence[AuditEvent], *, spend: Spend | None = None
    ) -> list[bool]:
        """`append_event` for each of `events`, in one transaction and in order.

        What an activity records together (the workflow's decided events, then the call's
        own) costs one commit instead of one each. All or nothing: a key conflict on any
        of them raises `EventKeyConflict` and writes none. One event, or none, is the
        same as `append_event`. With `spend`, a call's cost is booked in the same
        transaction (`BudgetLedger.record_spend`, once per its key).

        Returns:
            For each event, True if written, False if a retry wrote it before.
        """
        if spend is not None:
            moved: dict[str, int] = {}
            with self._errors("append audit events"):
                async with self._sessions.begin() as session:
                    await self.budgets.spend_in(session, spend)
                    written = await self._append_in(session, events, moved)
            self._committed(moved)
            return written
        if not events:
            return []
        inline = self._inline_events()
        if inline is not None:
            with self._errors("append audit events"):
                done = inline.append(events)
            if done is not None:
                self._committed(done[1])
                await _yield()
                return done[0]
        moved = {}
        with self._errors("append audit events"):
            async with self._sessions.begin() as session:
                written = await self._append_in(session, events, moved)
        self._committed(moved)
        return written

    def _inline_events(self) -> InlineEvents | None:
        """The writer that commits events on this thread, made on first use (a SQLite file)."""
        if self._inline is None and self._inline_wanted:
            # Imported here: `inline_events` builds on this module's statements.
            from orchestrator.store.inline_events import InlineEvents

            self._inline = InlineEvents(self._url)
        return self._inline

    def _read_here(self, body: Callable[[Connection], _T]) -> _T | None:
        """`body` on the calling thread over the inline connection (a SQLite file), else None.

        The ledgers' reads on a session's start path take it (`LedgerParts.read_here`).
        """
        inline = self._inline_events()
        return None if inline is None else inline.read(body)

    def _write_here(self, body: Callable[[Connection], _T]) -> _T | None:
        """`body` in one write transaction on the calling thread (a SQLite file), else None.

        The ledgers' writes on a gateway request's path take it (`LedgerParts.write_here`).
        """
        inline = self._inline_events()
        return None if inline is None else inline.write(body)

    def _committed(self, moved: Mapping[str, int]) -> None:
        if moved and self.on_events_committed is not None:
            self.on_events_committed(moved)

    async def _append_in(
        self, session: AsyncSession, events: Sequence[AuditEvent], moved: dict[str, int]
    ) -> list[bool]:
        """`append_events` inside the caller's transaction (a conflict raises, rolling it back).

        `moved` gets the newest `seq` written per session, for `on_events_committed` once
        the transaction committed.
        """
        stmt = event_insert()
        written: list[bool] = []
        retried: list[tuple[AuditEvent, AuditEvent | None]] = []
        for sid in sorted({e.session_id for e in events}):
            await lock_session_events(session, self.dialect, sid)
        for event in events:
            seq = (await session.execute(stmt, event_params(event))).scalar_one_or_none()
            if seq is not None:
                await notify_event(session, self.dialect, event.session_id, seq)
                moved[event.session_id] = seq
                written.append(True)
                continue
            row = await session.scalar(
                select(AuditEventRow).where(AuditEventRow.event_key == event.event_key)
            )
            retried.append((event, None if row is None else _record(AuditEvent, row)))
            written.append(False)
        for event, stored in retried:
            check_retry(stored, event)
        return written

    async def list_events(
        self, session_id: str, *, kind: EventKind | None = None
    ) -> list[AuditEvent]:
        """A session's audit events in the order they were written, `id` filled in."""
        stmt = (
            select(AuditEventRow)
            .where(AuditEventRow.session_id == session_id)
            .order_by(AuditEventRow.id)
        )
        if kind is not None:
            stmt = stmt.where(AuditEventRow.kind == kind.value)
        with self._errors("list audit events"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [_record(AuditEvent, row) for row in rows]

    # Approvals

    async def record_approval_request(self, rec: ApprovalRecord) -> bool:
        """Record a request for approval unless one with its `approval_id` exists.

        Returns:
            True if written; False if it was already there (nothing changed, so a retry
            can never reset a decision).
        """
        with self._errors("record approval request"):
            async with self._sessions.begin() as session:
                new_id = (await session.execute(self._approval_insert(rec))).scalar_one_or_none()
        return new_id is not None

    def _approval_insert(self, rec: ApprovalRecord) -> ReturningInsert[tuple[str]]:
        """The request's row unless one with its `approval_id` exists; returns its id if new."""
        return (
            self._insert(ApprovalRow)
            .values(_values(rec))
            .on_conflict_do_nothing(index_elements=[ApprovalRow.approval_id])
            .returning(ApprovalRow.approval_id)
        )

    async def decide_approval(
        self,
        approval_id: str,
        *,
        status: ApprovalStatus,
        decided_by: str,
        reason: str | None,
        decided_at: datetime,
    ) -> bool:
        """Decide a pending approval, atomically.

        One conditional `UPDATE ... WHERE status = 'pending'` claims the request, so of any
        number of concurrent callers (in any process) exactly one gets True.

        Returns:
            True if this call decided it; False if it was already decided (unchanged).

        Raises:
            StoreError: The approval does not exist, `status` is not a decision, or the
                database failed.
        """
        if status is ApprovalStatus.PENDING:
            raise StoreError(f"cannot decide approval {approval_id!r} as 'pending'")
        stmt = (
            update(ApprovalRow)
            .where(
                ApprovalRow.approval_id == approval_id,
                ApprovalRow.status == ApprovalStatus.PENDING.value,
            )
            .values(
                status=status.value, decided_by=decided_by, reason=reason, decided_at=decided_at
            )
            .returning(ApprovalRow.approval_id)
            .execution_options(synchronize_session=False)
        )
        with self._errors("decide approval"):
            async with self._sessions.begin() as session:
                claimed = (await session.execute(stmt)).scalar_one_or_none()
                exists = claimed is not None or (
                    await session.get(ApprovalRow, approval_id) is not None
                )
        if not exists:
            raise StoreError(f"cannot decide approval {approval_id!r}: it does not exist")
        return claimed is not None

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """The approval request with its decision, or None if unknown.

        On a SQLite file one primary-key read on the calling thread, its SQL made once
        (`driver_sql`): about 0.02 ms of CPU against 0.6-0.8 ms through the pool, and a WAL
        reader never waits for a writer. The approvals' writes stay in the pool: committed
        on the event loop's thread (0.15-0.4 ms each even so), fifty decisions at once
        doubled the first-token median of the sessions the same process was streaming
        (`bench/stream.py`, bench/README.md).
        """
        with self._errors("read approval"):
            here = self._read_here(lambda conn: (_approval_row(conn, approval_id),))
            if here is not None:
                found = here[0]
                return None if found is None else ApprovalRecord.model_validate(found)
            async with self._sessions() as session:
                row = await session.get(ApprovalRow, approval_id)
                return None if row is None else _record(ApprovalRecord, row)

    async def list_approvals(
        self, *, status: ApprovalStatus | None = None, session_id: str | None = None
    ) -> list[ApprovalRecord]:
        """Approval requests, oldest first, optionally filtered by status and session."""
        stmt = select(ApprovalRow).order_by(ApprovalRow.requested_at, ApprovalRow.approval_id)
        if status is not None:
            stmt = stmt.where(ApprovalRow.status == status.value)
        if session_id is not None:
            stmt = stmt.where(ApprovalRow.session_id == session_id)
        with self._errors("list approvals"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [_record(ApprovalRecord, row) for row in rows]

    async def sessions_awaiting_approval(self) -> set[str]:
        """The sessions with at least one pending approval request: one column, no rows."""
        stmt = (
            select(ApprovalRow.session_id)
            .where(ApprovalRow.status == ApprovalStatus.PENDING.value)
            .distinct()
        )
        with self._errors("list sessions awaiting approval"):
            async with self._sessions() as session:
                return set((await session.scalars(stmt)).all())

    # Helpers

    def _insert(self, table: type[Base]) -> _Insert:
        """An `INSERT` in the dialect's flavour, which is where `ON CONFLICT` lives."""
        return _insert_for(self.dialect, table)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn database and row-validation failures into `StoreError`."""
        try:
            yield
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"store could not {action} ({self.url}): {describe_error(exc, self._url)}"
            ) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise StoreError(
                f"store could not {action} ({self.url}): a stored {exc.title} row is invalid "
                f"({exc.error_count()} error(s); {where}: {first['msg']})"
            ) from exc


async def _yield() -> None:
    """Let the event loop run other tasks once, after a write committed on its thread.

    A write through the pool suspends its caller while the driver's thread works; one
    committed inline would not, and a caller that writes in a loop (a burst of events)
    would then starve every other task, the watchers of those events among them.
    """
    await asyncio.sleep(0)


def _insert_for(dialect: str, table: type[Base]) -> _Insert:
    """An `INSERT` in the dialect's flavour, which is where `ON CONFLICT` lives."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def session_upsert(dialect: str, rec: SessionRecord) -> _Insert:
    """Record a session's start; a known session only gets its `run_id` and `status`."""
    stmt = _insert_for(dialect, SessionRow).values(_values(rec))
    return stmt.on_conflict_do_update(
        index_elements=[SessionRow.session_id],
        set_={"run_id": stmt.excluded.run_id, "status": stmt.excluded.status},
    )


KEEPS_ITS_END: Final = (
    f" WHERE NOT ({SessionRow.__tablename__}.run_id = excluded.run_id"
    f" AND {SessionRow.__tablename__}.status IN"
    f" ({', '.join(repr(end.value) for end in ENDED)})"
    f" AND {SessionRow.__tablename__}.status <> excluded.status)"
)
"""The condition of a session start's update of a known row: a run's session that has
ended keeps its end (a later write of that run carrying its opening again, after the
closing call wrote the end unheard); a new run of the session id starts it again."""


@functools.cache
def session_start_insert() -> TextClause:
    """`session_upsert` as text built once from the table, so SQLAlchemy compiles it once.

    The dialects' `INSERT ... ON CONFLICT` constructs are not cacheable (see
    `event_insert`); SQLite and PostgreSQL both speak this SQL. Parameters: `_values` of
    a `SessionRecord`.
    """
    columns = list(SessionRow.__table__.columns)
    sql = (
        f"INSERT INTO {SessionRow.__tablename__} ({', '.join(c.name for c in columns)})"
        f" VALUES ({', '.join(':' + c.key for c in columns)})"
        " ON CONFLICT (session_id) DO UPDATE SET run_id = excluded.run_id,"
        f" status = excluded.status{KEEPS_ITS_END} RETURNING session_id"
    )
    return text(sql).bindparams(*(bindparam(c.key, type_=c.type) for c in columns))


def event_columns() -> list[KeyedColumnElement[Any]]:
    """The columns `event_insert` writes from an event, in order (not `id` nor `seq`)."""
    return [c for c in AuditEventRow.__table__.columns if c.key not in ("id", "seq")]


def event_insert_sql(mark: Callable[[str], str]) -> str:
    """The SQL of `event_insert`, each parameter written by `mark` (`:name`, or `?`)."""
    name = AuditEventRow.__tablename__
    return (
        f"INSERT INTO {name} ({', '.join(c.name for c in event_columns())}, seq)"
        f" VALUES ({', '.join(mark(c.key) for c in event_columns())},"
        f" (SELECT coalesce(max(seq), 0) + 1 FROM {name}"
        f" WHERE session_id = {mark('seq_session_id')}))"
        " ON CONFLICT (event_key) DO NOTHING RETURNING seq"
    )


@functools.cache
def event_insert() -> TextualSelect:
    """Insert an event (`event_params`) with its session's next `seq`, returning the `seq`.

    Nothing is inserted when the event's key is already there. Text built once from the
    table, so SQLAlchemy compiles it once: the dialects' `INSERT ... ON CONFLICT`
    constructs are not cacheable, and compiling one cost more than the insert itself.
    SQLite and PostgreSQL both speak this SQL. Run it under the session's lock
    (`lock_session_events`), see `Store.append_event`.
    """
    columns = event_columns()
    sql = event_insert_sql(lambda key: ":" + key)
    binds = [bindparam(c.key, type_=c.type) for c in columns]
    return (
        text(sql)
        .bindparams(*binds, bindparam("seq_session_id", type_=String()))
        .columns(seq=BigInteger())
    )


@functools.cache
def _event_fields() -> tuple[str, ...]:
    return tuple(c.key for c in event_columns())


def event_params(event: AuditEvent) -> dict[str, object]:
    """The parameters of `event_insert` for `event`: its fields as stored, enums as values.

    Read off the event's attributes: `model_dump` copied the payload and walked every
    field through pydantic's serializer on each audit row of every request.
    """
    values: dict[str, object] = {}
    for name in _event_fields():
        value = getattr(event, name)
        values[name] = value.value if isinstance(value, Enum) else value
    values["seq_session_id"] = event.session_id
    return values


def check_retry(stored: AuditEvent | None, event: AuditEvent) -> None:
    """Accept an event whose key was already there only if it is the same event.

    Raises:
        EventKeyConflict: the key holds a different event.
    """
    fields = ["<row vanished>"] if stored is None else event_differences(stored, event)
    if fields:
        raise EventKeyConflict(event.event_key, fields)


def status_of(session_id: str) -> Select[tuple[str]]:
    """The read of a session's stored status."""
    return select(SessionRow.status).where(SessionRow.session_id == session_id)


def refuse_ended(session_id: str, held: str | None, wanted: object) -> None:
    """Raise for a status write the row refused, when the row exists (an ended session).

    Raises:
        SessionEnded: the session has ended, and `wanted` is not its end.
    """
    if held is not None and isinstance(wanted, str):
        raise SessionEnded(session_id, SessionStatus(held), SessionStatus(wanted))


def _values(
    rec: SessionRecord | AuditEvent | ApprovalRecord, *, exclude: set[str] | None = None
) -> dict[str, object]:
    """Column values for a record; enums become their plain string values."""
    values: dict[str, object] = rec.model_dump(exclude=exclude)
    return {name: v.value if isinstance(v, Enum) else v for name, v in values.items()}


def _approval_row(conn: Connection, approval_id: str) -> dict[str, Any] | None:
    """An approval's row by id on the driver's connection, each column as stored."""
    read = select_where(conn.dialect, ApprovalRow.__table__, ("approval_id",))
    return read.row(conn, (approval_id,))


def _record(model: type[_R], row: Base) -> _R:
    """The record for a row; raises `ValidationError` if the row holds bad values."""
    return model.model_validate(row, from_attributes=True)
