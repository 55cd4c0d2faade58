"""The approval queue's set reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.store import AuditEvent, EventKind, Store, queue_reads
from orchestrator.store.records import ApprovalRecord, ApprovalStatus

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _request(store: Store, n: int) -> None:
    await store.record_approval_request(
        ApprovalRecord(
            approval_id=f"a{n}",
            session_id=f"s{n}",
            workflow_id=f"session-s{n}",
            run_id="r",
            step_id="x",
            kind="tool_call",
            skill="payments.refund",
            summary="refund",
            binding_hash="h",
            requested_at=T0 + timedelta(minutes=n),
        )
    )


async def _event(store: Store, session_id: str, kind: EventKind, key: str) -> None:
    await store.append_event(
        AuditEvent(
            event_key=key,
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="r",
            kind=kind,
            created_at=T0,
        )
    )


async def test_counts_and_recent_decisions_newest_first(store: Store) -> None:
    assert await store.queue.counts() == dict.fromkeys(ApprovalStatus, 0)
    for n in range(4):
        await _request(store, n)
    approved, rejected = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED
    for n, status in ((0, approved), (1, rejected), (2, approved)):
        await store.decide_approval(
            f"a{n}", status=status, decided_by="lee", reason="r", decided_at=T0 + timedelta(n)
        )
    assert await store.queue.counts() == {
        ApprovalStatus.PENDING: 1,
        ApprovalStatus.APPROVED: 2,
        ApprovalStatus.REJECTED: 1,
    }
    newest = await store.queue.decided(None, limit=2)
    assert [r.approval_id for r in newest] == ["a2", "a1"]
    approved = await store.queue.decided(ApprovalStatus.APPROVED, limit=10)
    assert [r.approval_id for r in approved] == ["a2", "a0"]


async def test_events_of_many_sessions_by_kind_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_reads, "SESSIONS_PER_READ", 2)  # several IN lists
    for n in range(5):
        await _event(store, f"s{n}", EventKind.SESSION_STARTED, f"start{n}")
        await _event(store, f"s{n}", EventKind.MODEL_CALL, f"call{n}")
        await _event(store, f"s{n}", EventKind.APPROVAL_DELEGATED, f"handed{n}")
    wanted = {EventKind.SESSION_STARTED, EventKind.APPROVAL_DELEGATED}
    found = await store.queue.events_of(["s0", "s2", "s4", "s4", "nobody"], wanted)
    assert sorted(found) == ["s0", "s2", "s4"]
    for events in found.values():
        kinds = [e.kind for e in events]
        assert kinds == [EventKind.SESSION_STARTED, EventKind.APPROVAL_DELEGATED]
    assert await store.queue.events_of([], wanted) == {}
