"""A gated call's request, the events before it and the session's status: one commit.

The request is written by a local activity (`check_call`, `request_approval`), so its
store time is inside a workflow task. Apart from its events, the request's row went
through the store's pool, whose transaction holds SQLite's write lock across hand-offs to
the driver's thread: in `bench/load.py` 160 requests at once queued on that lock and held
their workflow tasks open past 5 s (bench/README.md, "The gated call's request in one
commit"). Now the row rides in the transaction of its events and status: on a SQLite file
on the calling thread with nothing through the pool, and all or nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from test_inline_reads import _pool_statements

from orchestrator.exceptions import EventKeyConflict
from orchestrator.runtime import Runtime
from orchestrator.session.activities import SessionActivities
from orchestrator.session.approval_requests import pending_request
from orchestrator.session.types import ApprovalRequestInput, CallContext, WorkflowEvent
from orchestrator.settings import Settings
from orchestrator.store.records import (
    ApprovalStatus,
    AuditEvent,
    EventKind,
    SessionRecord,
    SessionStatus,
)

PROJECT = Path(__file__).parents[1] / "reliability" / "load_project"
CTX = CallContext(session_id="s-1", workflow_id="session-s-1", run_id="r-1", step_id="work")
T0 = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)


@pytest.fixture
async def runtime(store_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(project_dir=PROJECT, state_dir=tmp_path / "state", database_url=store_url)
    opened = await Runtime.open(settings)
    try:
        await opened.store.record_session_start(
            SessionRecord(
                session_id=CTX.session_id,
                workflow_id=CTX.workflow_id,
                run_id=CTX.run_id,
                plan_name="load",
                plan_version="1.0.0",
                input={},
                started_at=T0,
            )
        )
        yield opened
    finally:
        await opened.close()


def _request(runtime: Runtime, events: list[WorkflowEvent]) -> ApprovalRequestInput:
    """The request `check_call` makes for an amount over the contract's threshold."""
    spec = runtime.skills.get("load.apply", "1.0.0").spec
    pending = pending_request(
        workflow_id=CTX.workflow_id,
        step_id="work",
        call_id="call-1",
        spec=spec,
        arguments={"item": "a", "amount": 250},
        summary="apply a",
    )
    return ApprovalRequestInput(ctx=CTX, approval=pending, events=events)


async def test_a_request_is_one_commit_and_never_waits_in_the_pool(
    runtime: Runtime, store_url: str
) -> None:
    store = runtime.store
    started = WorkflowEvent(key="session-s-1:work:step", kind=EventKind.STEP_STARTED)
    request = _request(runtime, [started])
    activities = SessionActivities(runtime)
    with _pool_statements(store) as pooled:
        await ActivityEnvironment().run(activities.request_approval, request)
    # On a SQLite file the request queued on nobody's write lock: nothing went through the
    # pool (before, its row did, in a transaction of its own).
    assert (pooled == []) == store_url.startswith("sqlite")

    approval_id = request.approval.approval_id
    stored = await store.get_approval(approval_id)
    assert stored is not None
    assert (stored.status, stored.binding_hash, stored.arguments) == (
        ApprovalStatus.PENDING,
        request.approval.binding_hash,
        {"item": "a", "amount": 250},
    )
    events = await store.list_events(CTX.session_id)
    assert [e.kind for e in events] == [EventKind.STEP_STARTED, EventKind.APPROVAL_REQUESTED]
    session = await store.get_session(CTX.session_id)
    assert session is not None and session.status is SessionStatus.WAITING_APPROVAL

    # A retry after the decision resets nothing and writes nothing twice.
    assert await store.decide_approval(
        approval_id, status=ApprovalStatus.APPROVED, decided_by="ana", reason=None, decided_at=T0
    )
    await ActivityEnvironment().run(activities.request_approval, request)
    again = await store.get_approval(approval_id)
    assert again is not None and (again.status, again.decided_by) == (
        ApprovalStatus.APPROVED,
        "ana",
    )
    assert len(await store.list_events(CTX.session_id)) == len(events)


async def test_a_request_whose_events_conflict_is_not_written(runtime: Runtime) -> None:
    store = runtime.store
    key = "session-s-1:work:step"
    assert await store.append_event(
        AuditEvent(
            event_key=key,
            session_id=CTX.session_id,
            workflow_id=CTX.workflow_id,
            run_id=CTX.run_id,
            kind=EventKind.STEP_STARTED,
            step_id="work",
            created_at=T0,
        )
    )
    request = _request(runtime, [WorkflowEvent(key=key, kind=EventKind.STEP_FAILED)])
    with pytest.raises(EventKeyConflict):
        await ActivityEnvironment().run(SessionActivities(runtime).request_approval, request)
    # All or nothing: no request row without its events (before, the row was committed
    # on its own first).
    assert await store.get_approval(request.approval.approval_id) is None
    session = await store.get_session(CTX.session_id)
    assert session is not None and session.status is SessionStatus.RUNNING


async def test_a_request_for_a_session_that_has_ended_fails_for_good(runtime: Runtime) -> None:
    """The store refuses to reopen an ended session (`SessionEnded`); a retry would only be
    refused again, so the activity fails at once instead of five times over."""
    store = runtime.store
    await store.update_session(CTX.session_id, status=SessionStatus.COMPLETED, output="done")
    request = _request(runtime, [])
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(SessionActivities(runtime).request_approval, request)
    assert refused.value.non_retryable, refused.value
    assert "completed" in str(refused.value)
    assert await store.get_approval(request.approval.approval_id) is None
    session = await store.get_session(CTX.session_id)
    assert session is not None and session.status is SessionStatus.COMPLETED
