"""The reads behind the approval queue: counts, recent decisions, and events in one go.

The queue is read on every page load and, while someone has it open, after every burst
of events (`orchestrator.approvals.queue_stream`), so each read is a few set queries
whatever the number of requests: one per page of sessions for their events (not one per
session), a `COUNT ... GROUP BY` for the decided ones (not their rows), and only as many
decided rows as the page shows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.store.records import ApprovalRecord, ApprovalStatus, AuditEvent, EventKind
from orchestrator.store.tables import ApprovalRow, AuditEventRow

__all__ = ["SESSIONS_PER_READ", "QueueReads"]

SESSIONS_PER_READ: Final = 500
"""Session ids per `IN (...)` list (well under SQLite's 32766 bound parameters)."""


class QueueReads:
    """Queries for `orchestrator.approvals.queue`; reach them as `Store.queue`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        errors: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._sessions = sessions
        self._errors = errors

    async def counts(self) -> dict[ApprovalStatus, int]:
        """How many requests are in each state (every state named, zero included)."""
        stmt = sa.select(ApprovalRow.status, sa.func.count()).group_by(ApprovalRow.status)
        with self._errors("count approvals"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        counts = dict.fromkeys(ApprovalStatus, 0)
        for status, count in rows:
            counts[ApprovalStatus(status)] = int(count)
        return counts

    async def decided(self, status: ApprovalStatus | None, limit: int) -> list[ApprovalRecord]:
        """Up to `limit` decided requests (of `status`, or either), newest decision first."""
        decided = [s.value for s in ApprovalStatus if s is not ApprovalStatus.PENDING]
        stmt = (
            sa.select(ApprovalRow)
            .where(ApprovalRow.status.in_([status.value] if status else decided))
            .order_by(ApprovalRow.decided_at.desc(), ApprovalRow.approval_id)
            .limit(limit)
        )
        with self._errors("list decided approvals"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [ApprovalRecord.model_validate(r, from_attributes=True) for r in rows]

    async def events_of(
        self, session_ids: Collection[str], kinds: Collection[EventKind]
    ) -> dict[str, list[AuditEvent]]:
        """The events of `kinds` of each session, in the order written (absent: none)."""
        ids = sorted(set(session_ids))
        found: dict[str, list[AuditEvent]] = {}
        with self._errors("read approval events"):
            async with self._sessions() as session:
                for start in range(0, len(ids), SESSIONS_PER_READ):
                    stmt = (
                        sa.select(AuditEventRow)
                        .where(
                            AuditEventRow.session_id.in_(ids[start : start + SESSIONS_PER_READ]),
                            AuditEventRow.kind.in_([k.value for k in kinds]),
                        )
                        .order_by(AuditEventRow.id)
                    )
                    for row in (await session.scalars(stmt)).all():
                        event = AuditEvent.model_validate(row, from_attributes=True)
                        found.setdefault(event.session_id, []).append(event)
        return found
