"""Read-only reports across sessions: spend by tenant or model, events since a time.

Spend is summed from the `model_call` audit events (one per model call, written once
whatever the retries), so a report agrees with the session transcripts it summarises.
A session's tenant comes from its session row; events whose session row is missing (the
start was never recorded) count under `default`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel

from orchestrator.store.ledger import Ledger
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.tables import AuditEventRow, SessionRow

__all__ = ["Reports", "SpendRow"]


class SpendRow(BaseModel):
    """Spend of one group (a tenant, a model) over the report's period."""

    key: str
    sessions: int
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cached_input_tokens: int = 0
    """Of `input_tokens`, those read from a prompt cache (priced at the cached rate)."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, those written to a prompt cache."""


class Reports(Ledger):
    """Cross-session queries on the store's database; reach it as `Store.reports`."""

    async def spend(
        self, by: Literal["tenant", "model"], *, since: datetime | None = None
    ) -> list[SpendRow]:
        """Model spend grouped by tenant or model, largest cost first.

        Args:
            by: What to group by.
            since: Only model calls recorded at or after this instant.
        """
        tenant = sa.func.coalesce(SessionRow.tenant, "default")
        key = tenant if by == "tenant" else sa.func.coalesce(AuditEventRow.model, "unknown")
        cost = sa.func.sum(AuditEventRow.cost_usd)
        payload = AuditEventRow.payload
        stmt = (
            sa.select(
                key.label("key"),
                sa.func.count(sa.distinct(AuditEventRow.session_id)),
                sa.func.count(AuditEventRow.id),
                sa.func.sum(AuditEventRow.input_tokens),
                sa.func.sum(AuditEventRow.output_tokens),
                cost,
                sa.func.sum(payload["cached_input_tokens"].as_integer()),
                sa.func.sum(payload["cache_write_tokens"].as_integer()),
            )
            .select_from(AuditEventRow)
            .outerjoin(SessionRow, SessionRow.session_id == AuditEventRow.session_id)
            .where(AuditEventRow.kind == EventKind.MODEL_CALL.value)
            .group_by(key)
            .order_by(cost.desc(), key)
        )
        if since is not None:
            stmt = stmt.where(AuditEventRow.created_at >= since)
        with self._errors(f"report spend by {by}"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        return [
            SpendRow(
                key=str(row[0]),
                sessions=int(row[1]),
                model_calls=int(row[2]),
                input_tokens=int(row[3] or 0),
                output_tokens=int(row[4] or 0),
                cost_usd=float(row[5] or 0.0),
                cached_input_tokens=int(row[6] or 0),
                cache_write_tokens=int(row[7] or 0),
            )
            for row in rows
        ]

    async def session_counts(self) -> dict[str, int]:
        """How many sessions are in each status."""
        stmt = sa.select(SessionRow.status, sa.func.count()).group_by(SessionRow.status)
        with self._errors("count sessions"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        return {str(status): int(count) for status, count in rows}

    async def events(
        self, kinds: Sequence[EventKind], *, since: datetime | None = None
    ) -> list[AuditEvent]:
        """Events of the given kinds across all sessions, in the order written."""
        stmt = (
            sa.select(AuditEventRow)
            .where(AuditEventRow.kind.in_([kind.value for kind in kinds]))
            .order_by(AuditEventRow.id)
        )
        if since is not None:
            stmt = stmt.where(AuditEventRow.created_at >= since)
        with self._errors("list events across sessions"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
        return [AuditEvent.model_validate(row, from_attributes=True) for row in rows]
