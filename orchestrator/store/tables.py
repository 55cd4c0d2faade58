"""Database tables of the store, as SQLAlchemy 2 typed declarative models.

The rows mirror `records.py` field for field, so a row converts to its record with
`model_validate(row, from_attributes=True)`. Everything here must mean the same on SQLite
and PostgreSQL: enums are plain strings (no PostgreSQL enum types to migrate), JSON is the
generic `JSON` type, and timestamps go through `UTCDateTime`.

There are no foreign keys on purpose: an audit event or approval must never be refused
because the activity that records the session start has not run yet.

`migrations/versions` creates these tables by hand; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "NAMING_CONVENTION",
    "ApprovalRow",
    "AuditEventRow",
    "Base",
    "BudgetReservationRow",
    "BudgetSpendRow",
    "BudgetUsageRow",
    "GatewayPinRow",
    "NoticeRow",
    "OutcomeRow",
    "RateWindowRow",
    "ResponseCacheRow",
    "SessionRow",
    "UTCDateTime",
]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can drop or alter them by name on
every backend."""

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid alias), never a BIGINT one.
_EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp that is always UTC, written and read.

    SQLite has no timezone type: SQLAlchemy stores the wall-clock text and drops the
    offset, so a non-UTC value would come back shifted, and text ordering would be wrong.
    Converting to UTC on write and tagging UTC on read makes both backends agree. Naive
    datetimes are taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before the driver sees it."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the driver gave back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the store's metadata."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class SessionRow(Base):
    """One agent session (`SessionRecord`)."""

    __tablename__ = "sessions"

    session_id: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    run_id: Mapped[str] = mapped_column(sa.String(), nullable=False)
    plan_name: Mapped[str] = mapped_column(sa.String(), nullable=False)
    plan_version: Mapped[str] = mapped_column(sa.String(), nullable=False)
    tenant: Mapped[str] = mapped_column(
        sa.String(), nullable=False, server_default="default", index=True
    )
    team: Mapped[str] = mapped_column(sa.String(), nullable=False, server_default="default")
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False, index=True)
    input: Mapped[JsonObject] = mapped_column(sa.JSON(), nullable=False)
    output: Mapped[JsonValue] = mapped_column(sa.JSON(), nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    cost_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEventRow(Base):
    """One audit trail entry (`AuditEvent`); `id` orders events as written.

    `seq` numbers a session's events 1, 2, ... in commit order: the id a watcher of the
    session's event stream resumes from (`orchestrator.events`).
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(_EVENT_ID, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(sa.String(), nullable=False, unique=True)
    session_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    workflow_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    run_id: Mapped[str] = mapped_column(sa.String(), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    step_id: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    model: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    skill: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    input_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    output_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    cost_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    duration_ms: Mapped[float | None] = mapped_column(sa.Float(), nullable=True)
    payload: Mapped[JsonObject] = mapped_column(sa.JSON(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)


class ApprovalRow(Base):
    """One approval request and its decision (`ApprovalRecord`)."""

    __tablename__ = "approvals"

    approval_id: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    workflow_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    run_id: Mapped[str] = mapped_column(sa.String(), nullable=False)
    step_id: Mapped[str] = mapped_column(sa.String(), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(), nullable=False)
    skill: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    skill_version: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    arguments: Mapped[JsonObject] = mapped_column(sa.JSON(), nullable=False)
    summary: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    binding_hash: Mapped[str] = mapped_column(sa.String(), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False, index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    decided_by: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)


class BudgetUsageRow(Base):
    """Money and tokens committed (reserved or spent) and spent, per budget scope and period.

    `committed` is what new sessions are checked against: the sum over sessions of the
    larger of their reservation and their spend, so a reservation is never counted twice.
    """

    __tablename__ = "budget_usage"

    scope: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    period: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    committed_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    committed_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    spent_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    spent_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)


class BudgetReservationRow(Base):
    """What one session holds of one budget, and what it has spent of it."""

    __tablename__ = "budget_reservations"

    session_id: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    period: Mapped[str] = mapped_column(sa.String(), nullable=False)
    reserved_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    reserved_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    spent_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    spent_tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    settled: Mapped[bool] = mapped_column(sa.Boolean(), nullable=False)


class BudgetSpendRow(Base):
    """One model call's cost, written once: a retried call finds its key and adds nothing."""

    __tablename__ = "budget_spend"

    spend_key: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    cost_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)


class GatewayPinRow(Base):
    """The deployment a gateway session is pinned to, shared by every gateway process.

    `version` grows with each change, so a switch is a compare-and-set: two processes that
    both decide to switch a session at the same boundary cannot both win.
    """

    __tablename__ = "gateway_pins"

    session_id: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    deployment: Mapped[str] = mapped_column(sa.String(), nullable=False)
    key_id: Mapped[str] = mapped_column(sa.String(), nullable=False)
    tenant: Mapped[str] = mapped_column(sa.String(), nullable=False)
    team: Mapped[str] = mapped_column(sa.String(), nullable=False)
    phase: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    """`loop` when the last answer held tool calls, `final` when it was a final answer."""
    version: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class NoticeRow(Base):
    """One notice to one approver on one channel about one request (`NoticeRecord`).

    `notice_key` (request x stage x channel x recipient) makes recording idempotent across
    API processes and restarts; `status` and `claimed_until` let one process at a time send
    it, and a process that died while sending leaves it to be sent again (at least once).
    """

    __tablename__ = "notices"

    notice_key: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    approval_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    stage: Mapped[str] = mapped_column(sa.String(), nullable=False)
    group: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    channel: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    recipient: Mapped[str] = mapped_column(sa.String(), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer(), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)


class OutcomeRow(Base):
    """One outcome signal against the deployment that produced it (`OutcomeRecord`).

    The router learns quality per (deployment, task type, tenant) from these rows;
    `outcome_key` makes recording idempotent (a retried activity writes nothing new).
    """

    __tablename__ = "routing_outcomes"
    __table_args__ = (
        # Covers the tallies' read (`OutcomeLedger.tallies`): the index alone, grouped.
        sa.Index("ix_routing_outcomes_tally", "tenant", "task_type", "deployment", "score"),
    )

    outcome_key: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    session_id: Mapped[str] = mapped_column(sa.String(), nullable=False, index=True)
    tenant: Mapped[str] = mapped_column(sa.String(), nullable=False)
    task_type: Mapped[str] = mapped_column(sa.String(), nullable=False)
    deployment: Mapped[str] = mapped_column(sa.String(), nullable=False)
    signal: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    score: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    step_id: Mapped[str | None] = mapped_column(sa.String(), nullable=True)
    detail: Mapped[str | None] = mapped_column(sa.Text(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class ResponseCacheRow(Base):
    """One remembered model answer (`orchestrator.cache`), until `expires_at`.

    `entry` is the digest of tenant, model name, frame and question (the exact key);
    `tenant`, `name` and `frame` select the candidates of a semantic match, each with the
    embedding of its question.
    """

    __tablename__ = "response_cache"
    __table_args__ = (sa.Index("ix_response_cache_scope", "tenant", "name", "frame"),)

    entry: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(), nullable=False)
    frame: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    question: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    embedding: Mapped[list[float] | None] = mapped_column(sa.JSON(), nullable=True)
    response: Mapped[JsonObject] = mapped_column(sa.JSON(), nullable=False)
    deployment: Mapped[str] = mapped_column(sa.String(), nullable=False)
    cost_usd: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    """What the answer cost when it was made: what each hit saves."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class RateWindowRow(Base):
    """Requests and tokens of one gateway key in one minute, counted by every process.

    `window` is the minute since the epoch; a key's limits are checked against this
    minute's counts plus the share of the last minute's that still falls within 60 s.
    """

    __tablename__ = "gateway_rate_windows"

    key_id: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    window: Mapped[int] = mapped_column(sa.BigInteger(), primary_key=True)
    requests: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    tokens: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
