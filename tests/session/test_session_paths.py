"""Tool errors, rejection, binding, and model pinning on a real dev server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from orchestrator.exceptions import ApprovalError
from orchestrator.plans import Plan, load_plan, parse_plan
from orchestrator.service import decide_approval, query_state, start_session
from orchestrator.session import names
from orchestrator.session.types import (
    ApprovalDecision,
    ModelSwitchRequest,
    ModelSwitchResult,
    SessionResult,
)
from orchestrator.store.records import ApprovalRecord, ApprovalStatus, EventKind, SessionStatus
from orchestrator.testing import start_until_approval

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
DEMO_PLAN = REPO / "workflows/customer_refund.yaml"
DEMO_SCRIPT = REPO / "model_scripts/customer_refund.yaml"

LOOKUP_PLAN = parse_plan(
    """
name: lookup
steps:
  - id: lookup
    type: agent
    model: demo-strong
    goal: Find what ticket {{ input.ticket_id }} is about.
    skills: [tickets.get, orders.get]
    max_rounds: 6
""",
    "lookup.yaml",
)


async def test_bad_tool_calls_go_back_to_the_model_and_the_run_goes_on(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPTS / "tool_errors.yaml")
    handle = await start_session(
        env.client, LOOKUP_PLAN, {"ticket_id": "T-1001"}, task_queue=env.settings.task_queue
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert "kettle" in str(result.final_output)

    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    errors = [e.payload["error"] for e in events if e.kind is EventKind.TOOL_ERROR]
    assert len(errors) == 3
    assert "unknown tool 'payments_cancel'" in str(errors[0])
    assert "tickets_get, orders_get" in str(errors[0])
    assert "ticket_id: Field required" in str(errors[1])
    assert "ticket: Extra inputs are not permitted" in str(errors[1])
    assert "not valid JSON" in str(errors[2])
    calls = [e.skill for e in events if e.kind is EventKind.TOOL_CALL]
    assert calls == ["tickets.get", "orders.get"]
    # Each error was answered to the model: the loop went on for all five turns.
    assert [r.turn for r in env.replay.requests] == [0, 1, 2, 3, 4]
    # Each is an outcome of the deployment that made the call, for the router to learn from.
    outcomes = await env.runtime.store.outcomes.list(handle.id.removeprefix("session-"))
    pinned = result.model_timeline[0].model
    assert [(o.deployment, o.task_type, o.signal.value, o.score) for o in outcomes] == [
        (pinned, "default", "tool_argument_error", 0.0)
    ] * 3
    assert "unknown tool 'payments_cancel'" in (outcomes[0].detail or "")


async def test_rejection_is_told_to_the_model_and_nothing_runs(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(DEMO_SCRIPT)
    handle, session_id, pending = await _at_the_gate(env, load_plan(DEMO_PLAN))

    with pytest.raises(ApprovalError, match="needs a reason"):
        await decide_approval(
            env.client, env.runtime.store, pending.approval_id, approve=False, decided_by="maria"
        )
    await decide_approval(
        env.client,
        env.runtime.store,
        pending.approval_id,
        approve=False,
        decided_by="maria",
        reason="order is still under warranty; replace instead",
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    record = await env.runtime.store.get_approval(pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.REJECTED
    events = await env.runtime.store.list_events(session_id)
    assert not [e for e in events if e.kind is EventKind.TOOL_CALL and e.skill == "payments.refund"]
    assert not (env.runtime.skill_state_dir / "refunds.db").exists()
    # The rejected call was the model's proposal: an outcome of the deployment that made it.
    outcomes = await env.runtime.store.outcomes.list(session_id)
    rejected = [o for o in outcomes if o.signal.value == "approval_rejected"]
    assert [(o.deployment, o.score, o.detail) for o in rejected] == [
        (result.model_timeline[0].model, 0.0, "order is still under warranty; replace instead")
    ]

    # A second, different decision on the same request is refused.
    with pytest.raises(ApprovalError, match="already rejected"):
        await decide_approval(
            env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="joe"
        )


async def test_rejection_fails_the_step_when_the_plan_says_so(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(DEMO_SCRIPT)
    plan = load_plan(DEMO_PLAN)
    plan.steps[0].on_reject = "fail_step"  # type: ignore[union-attr]
    handle, session_id, pending = await _at_the_gate(env, plan)
    await decide_approval(
        env.client,
        env.runtime.store,
        pending.approval_id,
        approve=False,
        decided_by="maria",
        reason="no",
    )
    with pytest.raises(Exception, match="failed"):
        await handle.result()
    record = await env.runtime.store.get_session(session_id)
    assert record is not None and record.status is SessionStatus.FAILED
    assert "rejected by maria: no" in (record.error or "")


async def test_an_approval_cannot_release_a_different_action(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(DEMO_SCRIPT)
    handle, session_id, pending = await _at_the_gate(env, load_plan(DEMO_PLAN))

    # An approver was shown (or forged) other arguments: the hash differs and is refused.
    forged = ApprovalDecision(
        approval_id=pending.approval_id,
        binding_hash="0" * 64,
        approve=True,
        decided_by="mallory",
    )
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(names.DECIDE_APPROVAL, forged)
    assert "binding hash mismatch" in str(info.value.cause)
    unknown = forged.model_copy(update={"approval_id": "apr_000000000000"})
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(names.DECIDE_APPROVAL, unknown)
    state = await query_state(env.client, session_id)
    assert [p.approval_id for p in state.pending_approvals] == [pending.approval_id]
    assert not (env.runtime.skill_state_dir / "refunds.db").exists()

    first = await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    again = await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    assert not first.duplicate and again.duplicate
    assert (await handle.result()).status is SessionStatus.COMPLETED


async def test_model_switch_waits_for_the_next_step(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(DEMO_SCRIPT)
    handle, session_id, pending = await _at_the_gate(env, load_plan(DEMO_PLAN))

    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            names.REQUEST_MODEL_SWITCH, ModelSwitchRequest(model="gpt-nonexistent")
        )
    ack = await handle.execute_update(
        names.REQUEST_MODEL_SWITCH,
        ModelSwitchRequest(model="demo-fast", reason="cut cost"),
        result_type=ModelSwitchResult,
    )
    assert ack.effective == "next_step"
    # Still inside the investigate tool loop: the pin has not moved.
    assert (await query_state(env.client, session_id)).pinned_model == "demo-strong"

    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    result = await handle.result()
    assert [(p.step_id, p.model, p.boundary.value) for p in result.model_timeline] == [
        ("investigate", "demo-strong", "session_start"),
        ("reply", "demo-fast", "step_change"),
    ]
    assert "cut cost" in result.model_timeline[1].reason
    # The two investigate rounds after the request still went to the pinned model.
    served = [(r.conversation, r.model) for r in env.replay.requests]
    assert served == [("investigate", "replay-strong")] * 4 + [("reply", "replay-fast")]


async def _at_the_gate(
    env: Env, plan: Plan
) -> tuple[WorkflowHandle[object, SessionResult], str, ApprovalRecord]:
    """Start the demo plan for ticket T-1001 and wait for its refund approval."""
    gated = await start_until_approval(
        env.client,
        env.runtime.store,
        plan,
        {"ticket_id": "T-1001"},
        task_queue=env.settings.task_queue,
    )
    return gated.handle, gated.session_id, gated.pending


async def test_a_decision_is_stored_only_after_the_history_holds_it(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    """The store's "approved" is written by an activity scheduled after the update is
    saved, never inside the workflow task that takes it (which a dying worker loses).

    From `patches.GATE_GENERATION` that activity is the approved call itself, which
    records the decision before it runs (`SkillCallInput.decision`)."""
    env = await env_factory(DEMO_SCRIPT)
    handle, session_id, pending = await _at_the_gate(env, load_plan(DEMO_PLAN))
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    stored = await env.runtime.store.get_approval(pending.approval_id)
    # decide_approval returns once the store agrees with the workflow.
    assert stored is not None and stored.status is ApprovalStatus.APPROVED
    await handle.result()
    history = await handle.fetch_history()
    completed = next(
        i
        for i, e in enumerate(history.events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    )
    carrying = [
        (i, scheduled.activity_type.name)
        for i, e in enumerate(history.events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        for scheduled in [e.activity_task_scheduled_event_attributes]
        if b'"decision":{' in b"".join(p.data for p in scheduled.input.payloads)
    ]
    assert [name for _, name in carrying] == [names.CALL_SKILL]
    assert all(completed < i for i, _ in carrying)
    assert not any(
        e.activity_task_scheduled_event_attributes.activity_type.name
        == names.RECORD_APPROVAL_DECISION
        for e in history.events
    )
    decided = await env.runtime.store.list_events(session_id, kind=EventKind.APPROVAL_DECIDED)
    assert [e.payload["decided_by"] for e in decided] == ["maria"]
