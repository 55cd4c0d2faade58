"""Long sessions continue as new at safe points and lose nothing on the way.

The threshold is set to one event, so the session continues as new at every safe point it
reaches: between the investigation's two rounds (its tool loop carried over), after the
investigation (between steps), at the review step's wait (with the approval pending), and
after the review. The test checks what crosses each time: the
pinned model and its timeline, the pending approval (decided in a later run than the one
that asked), the resolved skill versions, outputs and cost; and that every run's history
replays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import REPO, Env
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError
from test_replay_histories import replayer

from orchestrator.plans.models import AgentStep, ApprovalStep, Plan
from orchestrator.service import decide_approval, query_state, start_session
from orchestrator.session.types import SessionOptions, SessionState
from orchestrator.session_start import StartOptions
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import eventually, wait_for_pending_approval

SCRIPT = REPO / "tests/scripts/long_session.yaml"

PLAN = Plan(
    name="long-session",
    steps=[
        AgentStep(
            id="investigate",
            goal="Look into ticket T-1001",
            skills=["tickets.get"],
            model="demo-strong",
        ),
        ApprovalStep(type="approval", id="review", summary="Refund order A-1001?"),
        AgentStep(id="reply", goal="Tell the customer", model="demo-fast"),
    ],
)


async def test_continue_as_new_carries_pin_approval_and_cost(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    store = env.runtime.store
    handle = await start_session(
        env.client,
        PLAN,
        {},
        StartOptions(options=SessionOptions(continue_as_new_after=1)),
        task_queue=env.settings.task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    first_run = handle.result_run_id
    pending = await wait_for_pending_approval(store, session_id)

    async def continued_waiting() -> SessionState | None:
        events = await store.list_events(session_id, kind=EventKind.CONTINUED_AS_NEW)
        if not any(e.payload.get("point") == "approval:1" for e in events):
            return None
        try:
            state = await query_state(env.client, session_id)
        except RPCError:
            return None  # the new run has not taken its first task yet
        return state if state.pending_approvals else None

    state = await eventually(continued_waiting, what="a run that continued with the approval")
    latest = await env.client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != first_run
    assert [p.approval_id for p in state.pending_approvals] == [pending.approval_id]
    assert state.status is SessionStatus.WAITING_APPROVAL
    assert state.pinned_model == "demo-strong"
    assert [(p.step_id, p.model) for p in state.model_timeline] == [("investigate", "demo-strong")]
    assert state.cost_usd > 0
    assert state.steps[0].status == "completed" and state.steps[0].output

    # The decision goes to the run that waits now, not the one that asked.
    await decide_approval(
        env.client, store, pending.approval_id, approve=True, decided_by="maria", reason="ok"
    )
    result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert set(result.outputs) == {"investigate", "review", "reply"}
    assert result.outputs["review"] == {"approved": True, "decided_by": "maria", "reason": "ok"}
    assert [(p.step_id, p.model) for p in result.model_timeline] == [
        ("investigate", "demo-strong"),
        ("reply", "demo-fast"),
    ]
    events = await store.list_events(session_id)
    calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    assert result.cost_usd == sum(e.cost_usd for e in calls) > 0
    assert result.input_tokens == sum(e.input_tokens for e in calls)
    continued = [e for e in events if e.kind is EventKind.CONTINUED_AS_NEW]
    assert [e.payload["point"] for e in continued] == [
        "loop:0:0:1",
        "step:1",
        "approval:1",
        "step:2",
    ]
    assert continued[2].payload["pending_approvals"] == [pending.approval_id]
    assert [e.model for e in continued] == ["demo-strong"] * 4
    # Skill versions were resolved once, at the start, and carried after that.
    assert len([e for e in events if e.kind is EventKind.SESSION_STARTED]) == 1
    [approval] = await store.list_approvals(session_id=session_id)
    assert approval.decided_by == "maria"
    record = await store.get_session(session_id)
    assert record is not None and record.status is SessionStatus.COMPLETED
    assert record.cost_usd == result.cost_usd

    async def all_runs() -> list[WorkflowExecution] | None:
        found = [run async for run in env.client.list_workflows(f"WorkflowId = '{handle.id}'")]
        # Visibility lags the run's close: wait until no run reads running any more.
        settled = all(r.status and r.status is not WorkflowExecutionStatus.RUNNING for r in found)
        return found if len(found) == 5 and settled else None

    runs = await eventually(all_runs, what="five runs in visibility")
    assert sorted(r.status for r in runs if r.status) == sorted(
        [WorkflowExecutionStatus.CONTINUED_AS_NEW] * 4 + [WorkflowExecutionStatus.COMPLETED]
    )
    for run in runs:
        history = await env.client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        replayed = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
