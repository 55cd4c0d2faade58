"""The queue's live stream on both store backends, woken by the real notices; and the
tenants the queue keeps to.

No worker: requests are written to the store as the workflow's activities write them
(the request row, then its `approval_requested` event; the decision, then its event), and
the stream's generator runs over a `live_hub` fed by the SQLite poll or PostgreSQL's
`NOTIFY`. The stream must say each time what the queue shows changed, with the counts.
A person limited to some tenants (`Approver.tenants`) gets a queue (rows and counts, so
its stream too) of their tenants' sessions only: the rule of the request page and the
session events API (`sees_session`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.queue import Queue, load_queue
from orchestrator.approvals.queue_stream import queue_events, version
from orchestrator.events.live import live_hub
from orchestrator.store import AuditEvent, EventKind, Store
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, SessionRecord

DIRECTORY = ApproverDirectory.model_validate(
    {
        "groups": ["finance"],
        "policy": {"skills": {"payments.refund": "finance"}},
        "users": {
            "lee": {"groups": ["finance"]},
            "ann": {"groups": ["finance"], "tenants": ["acme"]},
        },
    }
)
LEE, ANN = DIRECTORY.users["lee"], DIRECTORY.users["ann"]


def _event(session_id: str, kind: EventKind, approval_id: str) -> AuditEvent:
    return AuditEvent(
        event_key=f"{kind.value}:{approval_id}",
        session_id=session_id,
        workflow_id=f"session-{session_id}",
        run_id="r",
        kind=kind,
        payload={"approval_id": approval_id},
        created_at=datetime.now(UTC),
    )


async def _ask(store: Store, approval_id: str, tenant: str | None = None) -> None:
    """A pending request; with `tenant`, its session's record too (of that tenant)."""
    session_id = f"s-{approval_id}"
    if tenant is not None:
        await store.record_session_start(
            SessionRecord(
                session_id=session_id,
                workflow_id=f"session-{session_id}",
                run_id="r",
                plan_name="refund",
                plan_version="1",
                tenant=tenant,
                started_at=datetime.now(UTC),
            )
        )
    await store.record_approval_request(
        ApprovalRecord(
            approval_id=approval_id,
            session_id=session_id,
            workflow_id=f"session-{session_id}",
            run_id="r",
            step_id="investigate",
            kind="tool_call",
            skill="payments.refund",
            skill_version="1.0.0",
            arguments={"order_id": "A-1", "amount": 5.0, "currency": "EUR", "reason": "late"},
            summary="refund",
            binding_hash="h",
            requested_at=datetime.now(UTC),
        )
    )
    await store.append_event(_event(session_id, EventKind.APPROVAL_REQUESTED, approval_id))


async def _queue_with(chunks: AsyncGenerator[bytes, None], **counts: int) -> dict[str, Any]:
    """The first `queue` message with these counts: a read that falls between a request's
    row and its event (or a decision's) may send a step before it."""
    while True:
        chunk = (await asyncio.wait_for(anext(chunks), 20)).decode()
        if chunk.startswith("event: queue"):
            data: dict[str, Any] = json.loads(chunk.split("data: ", 1)[1])
            if all(data["counts"][name] == value for name, value in counts.items()):
                return data


async def test_the_stream_follows_requests_and_decisions_on_both_backends(store: Store) -> None:
    async def load() -> Queue:
        return await load_queue(store, DIRECTORY, LEE, "mine", None, words=False)

    async with live_hub(store, None) as hub:
        chunks = queue_events(hub, load, version(await load()), heartbeat=30, settle=0.01)
        try:
            assert await anext(chunks) == b"retry: 2000\n\n"
            assert hub.watchers == 1  # the flag counts, so the SQLite poll runs fast
            await _ask(store, "a1")
            await _queue_with(chunks, mine=1, pending=1, approved=0, rejected=0, all=1)
            await _ask(store, "a2")
            await _queue_with(chunks, mine=2, all=2)
            await _approve(store, "a1")
            decided = await _queue_with(chunks, mine=1, approved=1, all=2)
            assert decided["version"] == version(await load())
        finally:
            await chunks.aclose()
        assert hub.watchers == 0  # the stream's flag is gone with it


async def _approve(store: Store, approval_id: str) -> None:
    await store.decide_approval(
        approval_id,
        status=ApprovalStatus.APPROVED,
        decided_by="lee",
        reason=None,
        decided_at=datetime.now(UTC),
    )
    await store.append_event(_event(f"s-{approval_id}", EventKind.APPROVAL_DECIDED, approval_id))


async def test_the_queue_lists_and_counts_only_the_approvers_tenants(store: Store) -> None:
    for approval_id, tenant in (("a1", "acme"), ("a2", "acme"), ("g1", "globex"), ("x1", None)):
        await _ask(store, approval_id, tenant)
    await _approve(store, "a2")
    await _approve(store, "g1")
    for show in ("mine", "all"):
        ann = await load_queue(store, DIRECTORY, ANN, show, None, words=False)
        lee = await load_queue(store, DIRECTORY, LEE, show, None, words=False)
        shown = {e.record.approval_id for e in ann.entries}
        assert shown == ({"a1"} if show == "mine" else {"a1", "a2"})
        assert ann.counts == {"mine": 1, "pending": 1, "approved": 1, "rejected": 0, "all": 2}
        assert lee.counts == {"mine": 2, "pending": 2, "approved": 2, "rejected": 0, "all": 4}
        assert len(lee.entries) == (2 if show == "mine" else 4)
