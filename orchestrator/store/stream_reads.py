"""The reads behind the live event stream.

One session's events after a number, and which sessions gained events since a row id.

`events_after` is the only way a watcher ever receives a durable event: live notices
(PostgreSQL `NOTIFY`, the SQLite poll) only say *that* a session moved, and the watcher
then reads from its last `seq`. So what it sees is exactly the committed rows, in order,
each once, however notices are lost, merged or repeated.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from orchestrator.store.ledger import Ledger
from orchestrator.store.records import AuditEvent, EventKind
from orchestrator.store.tables import AuditEventRow

__all__ = ["StreamReads"]


class StreamReads(Ledger):
    """Queries for `orchestrator.events`; reach them as `Store.stream`."""

    async def events_after(self, session_id: str, after: int, limit: int) -> list[AuditEvent]:
        """Up to `limit` of the session's events with `seq > after`, in `seq` order."""
        stmt = (
            sa.select(AuditEventRow)
            .where(AuditEventRow.session_id == session_id, AuditEventRow.seq > after)
            .order_by(AuditEventRow.seq)
            .limit(limit)
        )
        with self._errors("read the event stream"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [AuditEvent.model_validate(row, from_attributes=True) for row in rows]

    async def last_event(
        self, session_id: str, kinds: Collection[EventKind] | None = None
    ) -> AuditEvent | None:
        """The session's newest event (largest `seq`), None if it has none.

        Args:
            session_id: The session.
            kinds: Only events of these kinds (all kinds when None): a reader that tells
                only some kinds must not take a later event of another kind for "nothing new".
        """
        where = [AuditEventRow.session_id == session_id]
        if kinds is not None:
            where.append(AuditEventRow.kind.in_([kind.value for kind in kinds]))
        stmt = sa.select(AuditEventRow).where(*where).order_by(AuditEventRow.seq.desc()).limit(1)
        with self._errors("read the event stream"):
            async with self._sessions() as session:
                row = (await session.scalars(stmt)).first()
                return None if row is None else AuditEvent.model_validate(row, from_attributes=True)

    async def newest_id(self) -> int:
        """The largest row id of any event, 0 when there are none."""
        stmt = sa.select(sa.func.coalesce(sa.func.max(AuditEventRow.id), 0))
        with self._errors("read the event stream"):
            async with self._sessions() as session:
                return int((await session.execute(stmt)).scalar_one())

    async def moved_since(self, after_id: int) -> tuple[int, dict[str, int]]:
        """The newest row id, and each session with events of a larger id, its newest `seq`.

        The SQLite poll's question. Row ids grow in commit order there (one writer at a
        time, ids never reused: rows are never deleted), so nothing committed is skipped.
        """
        stmt = (
            sa.select(
                AuditEventRow.session_id,
                sa.func.max(AuditEventRow.id),
                sa.func.max(AuditEventRow.seq),
            )
            .where(AuditEventRow.id > after_id)
            .group_by(AuditEventRow.session_id)
        )
        with self._errors("poll the event stream"):
            async with self._sessions() as session:
                rows = (await session.execute(stmt)).all()
        newest = max((int(row[1]) for row in rows), default=after_id)
        return newest, {str(row[0]): int(row[2] or 0) for row in rows}
