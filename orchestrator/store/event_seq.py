"""Per-session sequence numbers of audit events, and the PostgreSQL commit notice.

The event stream (`orchestrator.events`) resumes a watcher after the last `seq` it saw, so
`seq` must be dense per session and committed in order: if a reader could see `seq` 6
before 5 commits, a watcher would skip 5 for ever. Both backends get that from taking the
number inside the inserting transaction while writers of the session are serialised:
SQLite has one writer at a time for the whole file; PostgreSQL takes a transaction-scoped
advisory lock on the session first, so the next writer's `max(seq)` waits for this commit.

On PostgreSQL the same transaction sends `NOTIFY` with the session and number; the
notice is delivered on commit (never for a rolled-back insert) to every listening API
process, which then reads the rows: payloads stay far below the 8000-byte limit.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "EVENTS_CHANNEL",
    "LOCK_SQL",
    "MAX_NOTIFY_SESSION_ID",
    "NOTIFY_SQL",
    "lock_params",
    "lock_session_events",
    "notify_event",
    "notify_params",
]

EVENTS_CHANNEL: Final = "orchestrator_events"
"""The PostgreSQL channel a committed audit event is announced on, as `<seq> <session>`."""

MAX_NOTIFY_SESSION_ID: Final = 4000
"""Longer session ids are announced as `* ` (re-read every watched session) instead."""

_LOCK_CLASS: Final = 0x6576_6E74
"""First key of the two-key advisory lock ("evnt"), apart from the migration lock's space."""


LOCK_SQL: Final = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:sid))")
"""Takes the session's advisory lock until the transaction ends (PostgreSQL)."""
NOTIFY_SQL: Final = text("SELECT pg_notify(:channel, :payload)")
"""Announces a committed event (PostgreSQL); the parameters come from `notify_params`."""


def lock_params(session_id: str) -> dict[str, object]:
    """The parameters of `LOCK_SQL` for a session."""
    return {"cls": _LOCK_CLASS, "sid": session_id}


def notify_params(session_id: str, seq: int) -> dict[str, object]:
    """The parameters of `NOTIFY_SQL` for a session's event number `seq`."""
    named = session_id if len(session_id) <= MAX_NOTIFY_SESSION_ID else "*"
    return {"channel": EVENTS_CHANNEL, "payload": f"{seq} {named}"}


async def lock_session_events(session: AsyncSession, dialect: str, session_id: str) -> None:
    """Serialise writers of one session's events until the transaction ends (PostgreSQL)."""
    if dialect == "postgresql":
        await session.execute(LOCK_SQL, lock_params(session_id))


async def notify_event(session: AsyncSession, dialect: str, session_id: str, seq: int) -> None:
    """Announce the event to listeners when the transaction commits (PostgreSQL)."""
    if dialect == "postgresql":
        await session.execute(NOTIFY_SQL, notify_params(session_id, seq))
