"""The reads behind the approval queue: counts, recent decisions, and events in one go.

The queue is read on every page load and, while someone has it open, after every burst
of events (`orchestrator.approvals.queue_stream`), so each read is a few set queries
whatever the number of requests: one per page of sessions for their events (not one per
session), a `COUNT ... GROUP BY` for the decided ones (not their rows), and only as many
decided rows as the page shows.

Each read takes the tenants whose sessions the person may see (`Approver.tenants`;
None: every tenant's), so what the queue lists and counts is what the request page and
the session events API would show them: a request of another tenant's session, or of a
session with no record, is in neither the rows nor the counts.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final, TypeVar

import sqlalchemy as sa

from orchestrator.store.ledger import Ledger
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, AuditEvent, EventKind
from orchestrator.store.tables import ApprovalRow, AuditEventRow, SessionRow

__all__ = ["SESSIONS_PER_READ", "QueueReads"]

SESSIONS_PER_READ: Final = 500
"""Session ids per `IN (...)` list (well under SQLite's 32766 bound parameters)."""


class QueueReads(Ledger):
    """Queries for `orchestrator.approvals.queue`; reach them as `Store.queue`."""

    async def pending(self, tenants: Collection[str] | None = None) -> list[ApprovalRecord]:
        """Every pending request of `tenants`' sessions (None: of every session), oldest first."""
        stmt = _of_tenants(
            sa.select(ApprovalRow).where(ApprovalRow.status == ApprovalStatus.PENDING.value),
            tenants,
        ).order_by(ApprovalRow.requested_at, ApprovalRow.approval_id)
        with self._errors("list pending approvals"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [ApprovalRecord.model_validate(r, from_attributes=True) for r in rows]

    async def counts(self, tenants: Collection[str] | None = None) -> dict[ApprovalStatus, int]:
        """How many requests of `tenants`' sessions are in each state (zero included)."""
        stmt = _of_tenants(sa.select(ApprovalRow.status, sa.func.count()), tenants).group_by(
            ApprovalRow.status
        )
        with self._errors("count approvals"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        counts = dict.fromkeys(ApprovalStatus, 0)
        for status, count in rows:
            counts[ApprovalStatus(status)] = int(count)
        return counts

    async def decided(
        self, status: ApprovalStatus | None, limit: int, tenants: Collection[str] | None = None
    ) -> list[ApprovalRecord]:
        """Up to `limit` decided requests (of `status`, or either), newest decision first.

        Only of `tenants`' sessions (None: of every session).
        """
        decided = [s.value for s in ApprovalStatus if s is not ApprovalStatus.PENDING]
        stmt = (
            _of_tenants(
                sa.select(ApprovalRow).where(
                    ApprovalRow.status.in_([status.value] if status else decided)
                ),
                tenants,
            )
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


_Select = TypeVar("_Select", bound=sa.Select[Any])


def _of_tenants(stmt: _Select, tenants: Collection[str] | None) -> _Select:
    """`stmt` over approvals, kept to those of `tenants`' sessions (None: unchanged)."""
    if tenants is None:
        return stmt
    theirs = sa.select(SessionRow.session_id).where(SessionRow.tenant.in_(sorted(tenants)))
    return stmt.where(ApprovalRow.session_id.in_(theirs))
