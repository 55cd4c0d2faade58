"""Durable record of sessions, audit events and approvals.

`Store` is the async API the worker, CLI and HTTP API share; it runs on SQLite (the
embedded default) or PostgreSQL with the same code. `upgrade` is the synchronous schema
upgrade behind `orchestrator db upgrade`. The records are plain pydantic models, so what
the store returns serialises the same way in logs, the CLI and the JSON API.
"""

from orchestrator.store.migrate import upgrade
from orchestrator.store.records import (
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
)
from orchestrator.store.store import Store

__all__ = [
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditEvent",
    "EventKind",
    "SessionRecord",
    "SessionStatus",
    "Store",
    "upgrade",
]
