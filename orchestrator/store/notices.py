"""Notices to approvers: the idempotency record and outbox behind e-mail and chat notices.

Each notice has a key naming the request, the stage it reached (requested at a group,
escalated to one, delegated to a person), the channel and the recipient. Recording is
`INSERT ... ON CONFLICT DO NOTHING`, so any number of API processes, polling again and
again, record a notice once; the same key with different content is `NoticeKeyConflict`,
never a silent duplicate. Sending is claimed by a conditional `UPDATE` with a lease: one
process sends a notice at a time, and one that died mid-send leaves the notice to be sent
again when the lease ends (at least once; a recipient may, rarely, get one twice).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from orchestrator.exceptions import StoreError
from orchestrator.store.ledger import Ledger
from orchestrator.store.tables import NoticeRow

__all__ = [
    "NOTICE_CONTENT",
    "NoticeKeyConflict",
    "NoticeLedger",
    "NoticeRecord",
    "NoticeStatus",
    "notice_differences",
]


class NoticeStatus(StrEnum):
    """Where a notice is: waiting for its digest, being sent, or done one way or another."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DROPPED = "dropped"
    """Not sent: the request was decided, moved on, or the person may no longer see it."""
    FAILED = "failed"
    """Given up after the last attempt, or refused for good by the channel."""


class NoticeRecord(BaseModel):
    """One notice to one recipient on one channel about one request at one stage."""

    model_config = ConfigDict(from_attributes=True)

    notice_key: str
    approval_id: str
    stage: str
    group: str | None
    channel: str
    recipient: str
    status: NoticeStatus = NoticeStatus.QUEUED
    attempts: int = 0
    due_at: datetime
    claimed_until: datetime | None = None
    created_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = None


NOTICE_CONTENT = ("approval_id", "stage", "group", "channel", "recipient")
"""What a notice says; its key must always say the same."""


def notice_differences(stored: NoticeRecord, new: NoticeRecord) -> list[str]:
    """The content fields (`NOTICE_CONTENT`) in which two notices under one key differ."""
    return [f for f in NOTICE_CONTENT if getattr(stored, f) != getattr(new, f)]


class NoticeKeyConflict(StoreError):
    """A notice key was recorded before with different content (two notices, one name)."""

    def __init__(self, notice_key: str, fields: list[str]) -> None:
        super().__init__(
            f"notice key {notice_key!r} was already recorded with different content"
            f" ({', '.join(fields)} differ); the code that builds this key must make it"
            " unique per notice"
        )
        self.notice_key = notice_key
        self.fields = fields


class NoticeLedger(Ledger):
    """Notice operations on the store's database; reach it as `Store.notices`."""

    async def record(self, notices: Sequence[NoticeRecord]) -> int:
        """Record notices not recorded before; returns how many are new.

        Raises:
            NoticeKeyConflict: a key holds a notice with different content; the ones
                before it in `notices` are recorded, none after.
        """
        new = 0
        for notice in notices:
            values = notice.model_dump()
            values["status"] = notice.status.value
            stmt = (
                self._insert(NoticeRow)
                .values(values)
                .on_conflict_do_nothing(index_elements=[NoticeRow.notice_key])
                .returning(NoticeRow.notice_key)
            )
            with self._errors("record notice"):
                async with self._sessions.begin() as session:
                    if (await session.execute(stmt)).scalar_one_or_none() is not None:
                        new += 1
                        continue
                    row = await session.get(NoticeRow, notice.notice_key)
            stored = None if row is None else NoticeRecord.model_validate(row)
            differ = ["<row vanished>"] if stored is None else notice_differences(stored, notice)
            if differ:
                raise NoticeKeyConflict(notice.notice_key, differ)
        return new

    async def list_notices(
        self,
        *,
        approval_id: str | None = None,
        status: NoticeStatus | None = None,
        approval_ids: Collection[str] | None = None,
    ) -> list[NoticeRecord]:
        """Notices, oldest first; optionally of one request, of some, or in one status."""
        stmt = sa.select(NoticeRow).order_by(NoticeRow.created_at, NoticeRow.notice_key)
        if approval_id is not None:
            stmt = stmt.where(NoticeRow.approval_id == approval_id)
        if approval_ids is not None:
            stmt = stmt.where(NoticeRow.approval_id.in_(list(approval_ids)))
        if status is not None:
            stmt = stmt.where(NoticeRow.status == status.value)
        with self._errors("list notices"):
            async with self._sessions() as session:
                rows = (await session.scalars(stmt)).all()
                return [NoticeRecord.model_validate(row) for row in rows]

    async def claim_due(self, now: datetime, lease: timedelta) -> list[NoticeRecord]:
        """Claim, for sending, every waiting notice of each (channel, recipient) with one due.

        A recipient's notices go out together as one digest once the oldest is due. A
        notice claimed by a process whose lease ran out is claimed again. Each claim
        counts as an attempt.
        """
        row = NoticeRow
        claimable = sa.or_(
            row.status == NoticeStatus.QUEUED.value,
            sa.and_(row.status == NoticeStatus.SENDING.value, row.claimed_until < now),
        )
        due_pairs = (
            sa.select(row.channel, row.recipient).where(claimable, row.due_at <= now).distinct()
        )
        with self._errors("claim notices"):
            async with self._sessions.begin() as session:
                pairs = (await session.execute(due_pairs)).all()
                if not pairs:
                    return []
                stmt = (
                    sa.update(row)
                    .where(
                        claimable,
                        sa.or_(
                            *(
                                sa.and_(row.channel == channel, row.recipient == recipient)
                                for channel, recipient in pairs
                            )
                        ),
                    )
                    .values(
                        status=NoticeStatus.SENDING.value,
                        claimed_until=now + lease,
                        attempts=row.attempts + 1,
                    )
                    .returning(row)
                    .execution_options(synchronize_session=False)
                )
                claimed = (await session.scalars(stmt)).all()
                return [NoticeRecord.model_validate(r) for r in claimed]

    async def finish(
        self,
        keys: Sequence[str],
        status: NoticeStatus,
        now: datetime,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Settle claimed notices: sent, dropped, failed, or (`retry_at`) queued again."""
        if not keys:
            return
        values: dict[str, object] = {"status": status.value, "claimed_until": None}
        if status is NoticeStatus.SENT:
            values["sent_at"] = now
        if error is not None:
            values["last_error"] = error
        if retry_at is not None:
            values["due_at"] = retry_at
        stmt = (
            sa.update(NoticeRow)
            .where(NoticeRow.notice_key.in_(list(keys)))
            .values(values)
            .execution_options(synchronize_session=False)
        )
        with self._errors("settle notices"):
            async with self._sessions.begin() as session:
                await session.execute(stmt)
