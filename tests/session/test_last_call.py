"""The last model call closes the session itself (`patches.LAST_CALL_GENERATION`).

End to end on the refund demo (its last step, `reply`, is a plain agent step): no
`finish_session` in the history, and the audit trail and the session row exactly as a
session of generation 4 (which closes with `finish_session`) leaves them. A retry of the
closing call after it wrote the end (a worker killed before it reported) asks the model
nothing and answers with what was written. `ends_session` is pure: which steps may close.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Env
from temporalio.testing import ActivityEnvironment

from orchestrator.plans import load_plan, parse_plan
from orchestrator.plans.models import AgentStep
from orchestrator.service import decide_approval, start_session
from orchestrator.session import names, patches
from orchestrator.session.activities import SessionActivities
from orchestrator.session.last_call import ends_session
from orchestrator.session.types import (
    CallContext,
    ModelCallInput,
    SessionClosing,
    SessionResult,
)
from orchestrator.session_start import StartOptions
from orchestrator.store.records import AuditEvent, EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval

PLAN = REPO / "workflows/customer_refund.yaml"
SCRIPT = REPO / "model_scripts/customer_refund.yaml"


async def _refund(env: Env, session_id: str) -> tuple[SessionResult, list[str]]:
    """Run the refund demo to its end; its result and its local activities, in order."""
    handle = await start_session(
        env.client,
        load_plan(PLAN),
        {"ticket_id": "T-1001"},
        StartOptions(session_id=session_id),
        task_queue=env.settings.task_queue,
        runtime=env.runtime,
    )
    pending = await wait_for_pending_approval(env.runtime.store, session_id)
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    result = await handle.result()
    history = await handle.fetch_history()
    local = [
        json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    return result, local


VARIES = {
    EventKind.MODEL_PINNED: {"candidates"},  # the router's scores learn from each session
    EventKind.TOOL_CALL: {"idempotency_key", "output"},  # per workflow id (the refund's id)
}
"""What differs between two runs of one session in a payload, whatever path they take."""


def _trail(events: list[AuditEvent], session_id: str, approval_id: str) -> list[Any]:
    """The audit trail with what differs from session to session named, not compared."""
    trail = []
    for event in events:
        fields = event.model_dump(
            mode="json",
            exclude={"id", "seq", "session_id", "workflow_id", "run_id", "created_at"},
        )
        fields.pop("duration_ms", None)  # the model's and tools' own times
        for name in VARIES.get(event.kind, set()):
            fields["payload"].pop(name, None)
        text = json.dumps(fields, sort_keys=True)
        trail.append(text.replace(session_id, "<session>").replace(approval_id, "<approval>"))
    return trail


async def _audit(env: Env, session_id: str) -> list[Any]:
    store = env.runtime.store
    approvals = await store.list_approvals()
    approval = next(a for a in approvals if a.session_id == session_id)
    return _trail(await store.list_events(session_id), session_id, approval.approval_id)


async def test_the_last_call_closes_the_session_with_the_same_audit_trail(
    env_factory: Callable[[Path], Awaitable[Env]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await env_factory(SCRIPT)
    store = env.runtime.store
    new, new_local = await _refund(env, "closes-in-call")
    # The setup the starter resolves says which generation's paths the session takes.
    with monkeypatch.context() as older:
        older.setattr(patches, "GENERATION", patches.LAST_CALL_GENERATION - 1)
        old, old_local = await _refund(env, "closes-in-finish")

    assert names.FINISH_SESSION not in new_local
    assert old_local == [*new_local, names.FINISH_SESSION]

    # Same events, same keys, same order, same totals; the same row and result.
    assert await _audit(env, "closes-in-call") == await _audit(env, "closes-in-finish")
    events = await store.list_events("closes-in-call")
    assert [e.kind for e in events[-3:]] == [
        EventKind.MODEL_CALL,
        EventKind.STEP_COMPLETED,
        EventKind.SESSION_COMPLETED,
    ]
    calls = [e for e in events if e.kind is EventKind.MODEL_CALL]
    closing = events[-1]
    assert closing.input_tokens == sum(e.input_tokens for e in calls) == new.input_tokens
    assert closing.output_tokens == sum(e.output_tokens for e in calls) == new.output_tokens
    assert closing.cost_usd == new.cost_usd == old.cost_usd
    assert events[-2].payload == {"output": new.final_output}
    rows = [await store.get_session(s) for s in ("closes-in-call", "closes-in-finish")]
    assert rows[0] is not None and rows[1] is not None
    kept = {"status", "output", "error", "input_tokens", "output_tokens", "cost_usd"}
    assert rows[0].model_dump(include=kept) == rows[1].model_dump(include=kept)
    assert rows[0].status is SessionStatus.COMPLETED and rows[0].ended_at is not None
    assert new.model_dump(exclude={"session_id"}) == old.model_dump(exclude={"session_id"})


async def test_a_retry_after_the_close_answers_with_it_and_asks_nothing(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    store = env.runtime.store
    result, _ = await _refund(env, "closed-then-retried")
    row = await store.get_session("closed-then-retried")
    assert row is not None
    written = await store.list_events("closed-then-retried")
    last = next(e for e in reversed(written) if e.kind is EventKind.MODEL_CALL)
    asked = len(env.replay.requests)

    # The closing call's retry, as a worker killed after its write would have it retried.
    ask = ModelCallInput(
        ctx=CallContext(
            session_id=row.session_id,
            workflow_id=row.workflow_id,
            run_id=row.run_id,
            step_id="reply",
        ),
        round=0,
        model="demo-fast",
        messages=[],
        tools=[],
        closing=SessionClosing(
            input_tokens=row.input_tokens - last.input_tokens,
            output_tokens=row.output_tokens - last.output_tokens,
            cost_usd=row.cost_usd - last.cost_usd,
            settle_budget=True,
        ),
    )
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_timeout=None)
    answer = await retry.run(SessionActivities(env.runtime).call_model, ask)

    assert answer.closed is not None
    assert answer.closed.output == row.output == result.final_output
    closed = (answer.closed.input_tokens, answer.closed.output_tokens, answer.closed.cost_usd)
    assert closed == (result.input_tokens, result.output_tokens, result.cost_usd)
    assert answer.response.usage.input_tokens == last.input_tokens
    assert not answer.response.message.tool_calls
    assert len(env.replay.requests) == asked  # the model was not asked again
    assert await store.list_events("closed-then-retried") == written  # nothing rewritten
    reread = await store.get_session("closed-then-retried")
    assert reread is not None and reread.status is SessionStatus.COMPLETED


STEPS = parse_plan(
    """
name: ends
steps:
  - {id: one, type: agent, goal: First.}
  - {id: two, type: agent, goal: Second.}
""",
    "ends.yaml",
)


def _agent(plan_steps: list[Any], index: int) -> AgentStep:
    step = plan_steps[index]
    assert isinstance(step, AgentStep)
    return step


def test_only_the_plans_last_plain_agent_step_may_close_the_session() -> None:
    assert ends_session(STEPS, _agent(STEPS.steps, 1))
    assert not ends_session(STEPS, _agent(STEPS.steps, 0))  # another step runs after it
    schema = {"type": "object"}
    for step_fields, plan_fields in (
        ({"accept": "len(answer) > 3"}, {}),  # a rejected answer re-runs the step
        ({"output_schema": schema}, {}),  # a broken answer fails the step
        ({}, {"output_schema": schema}),  # a broken output fails the session
    ):
        last = _agent(STEPS.steps, 1).model_copy(update=step_fields)
        plan = STEPS.model_copy(update={"steps": [STEPS.steps[0], last], **plan_fields})
        assert not ends_session(plan, last), (step_fields, plan_fields)
    # A copy of the last step is not the plan's last step (a construct's inner step).
    assert not ends_session(STEPS, _agent(STEPS.steps, 1).model_copy())
