"""Rows of the response cache (`orchestrator.cache`): put, exact get, candidates, expiry.

Every read filters on `expires_at`, so an expired entry is never served even before it is
purged; `put` purges the expired rows of the same scope as it writes, which keeps the
table bounded by what is live without a sweeper process.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from orchestrator.store.ledger import Ledger
from orchestrator.store.tables import ResponseCacheRow
from orchestrator.types import JsonObject

__all__ = ["CacheEntry", "CacheLedger"]


class CacheEntry(BaseModel):
    """One remembered answer."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    entry: str
    tenant: str
    name: str
    frame: str
    question: str
    embedding: list[float] | None
    response: JsonObject
    deployment: str
    cost_usd: float
    created_at: datetime
    expires_at: datetime


class CacheLedger(Ledger):
    """Cache rows on the store's database; reach it as `Store.cache`."""

    async def get(self, entry: str, now: datetime) -> CacheEntry | None:
        """The live entry with this exact key, or None."""
        row = ResponseCacheRow
        with self._errors("read response cache"):
            async with self._sessions() as session:
                stmt = sa.select(row).where(row.entry == entry, row.expires_at > now)
                found = (await session.execute(stmt)).scalar_one_or_none()
                return None if found is None else CacheEntry.model_validate(found)

    async def candidates(
        self, tenant: str, name: str, frame: str, now: datetime, limit: int
    ) -> list[CacheEntry]:
        """The newest live entries of one tenant, name and frame that have an embedding."""
        row = ResponseCacheRow
        with self._errors("read response cache"):
            async with self._sessions() as session:
                stmt = (
                    sa.select(row)
                    .where(
                        row.tenant == tenant,
                        row.name == name,
                        row.frame == frame,
                        row.expires_at > now,
                        row.embedding.is_not(None),
                    )
                    .order_by(row.created_at.desc())
                    .limit(limit)
                )
                rows = (await session.execute(stmt)).scalars().all()
                return [CacheEntry.model_validate(r) for r in rows]

    async def put(self, entry: CacheEntry) -> None:
        """Store an answer (a newer answer to the same key replaces the older one)."""
        row = ResponseCacheRow
        values = entry.model_dump()
        stmt = self._insert(row).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[row.entry],
            set_={k: stmt.excluded[k] for k in values if k != "entry"},
        )
        with self._errors("write response cache"):
            async with self._sessions.begin() as session:
                await session.execute(
                    sa.delete(row)
                    .where(row.tenant == entry.tenant, row.expires_at <= entry.created_at)
                    .execution_options(synchronize_session=False)
                )
                await session.execute(stmt)
