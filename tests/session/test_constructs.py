"""Branches, parallel groups with a join, and bounded loops on a real dev server."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env
from temporalio.client import WorkflowFailureError, WorkflowHandle

from orchestrator import flow
from orchestrator.plans import Plan, parse_plan
from orchestrator.service import decide_approval, query_state, start_session
from orchestrator.session.types import SessionResult
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval
from orchestrator.types import JsonObject

SCRIPT = REPO / "model_scripts/customer_refund.yaml"
"""Any script serves: these plans make no model calls."""

TRIAGE = parse_plan(
    """
name: constructs
input_required: [ticket_id, order_id]
steps:
  - id: gather
    type: parallel
    steps:
      - {id: ticket, type: skill, skill: tickets.get,
         arguments: {ticket_id: "{{ input.ticket_id }}"}}
      - {id: order, type: skill, skill: orders.get,
         arguments: {order_id: "{{ input.order_id }}"}}
  - id: decide
    type: branch
    when: 'steps.order.output.status == "delivered" && steps.order.output.amount_paid > 20.0'
    then:
      - id: gate
        type: approval
        summary: Refund {{ steps.order.output.amount_paid }} to {{ steps.ticket.output.customer }}
    else:
      - {id: recheck, type: skill, skill: tickets.get,
         arguments: {ticket_id: "{{ steps.ticket.output.ticket_id }}"}}
""",
    "constructs.yaml",
)


async def _start(env: Env, plan: Plan, inputs: JsonObject) -> WorkflowHandle[object, SessionResult]:
    return await start_session(env.client, plan, inputs, task_queue=env.settings.task_queue)


async def test_parallel_join_then_branch_to_an_approval(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await _start(env, TRIAGE, {"ticket_id": "T-1001", "order_id": "A-1001"})
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, session_id)
    assert pending.summary == "Refund 42.5 to Ana Souza"
    state = await query_state(env.client, session_id)
    assert [s.id for s in state.steps] == ["gather", "decide", "ticket", "order", "gate"]
    assert state.current_step == "gate"

    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    joined = result.outputs["gather"]
    assert isinstance(joined, dict) and set(joined) == {"ticket", "order"}
    assert result.final_output == {"approved": True, "decided_by": "maria", "reason": None}
    assert "recheck" not in result.outputs


async def test_branch_takes_the_else_arm(env_factory: Callable[[Path], Awaitable[Env]]) -> None:
    env = await env_factory(SCRIPT)
    handle = await _start(env, TRIAGE, {"ticket_id": "T-1002", "order_id": "A-1002"})
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert "gate" not in result.outputs
    final = result.final_output
    assert isinstance(final, dict) and final["ticket_id"] == "T-1002"
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    assert not [e for e in events if e.kind is EventKind.APPROVAL_REQUESTED]


LOOP = """
name: loop
steps:
  - id: poll
    type: loop
    max_iterations: 5
    until: 'steps.look.output.status == "open" && iteration >= 3'
    steps:
      - {id: look, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
  - id: after
    type: skill
    skill: tickets.get
    arguments: {ticket_id: "{{ steps.look.output.ticket_id }}"}
"""


async def test_loop_runs_until_its_condition_under_fresh_ids(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await _start(env, parse_plan(LOOP, "loop.yaml"), {"t": "T-1001"})
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert {"look", "look#2", "look#3"} <= set(result.outputs)
    assert "look#4" not in result.outputs
    events = await env.runtime.store.list_events(handle.id.removeprefix("session-"))
    calls = [e for e in events if e.kind is EventKind.TOOL_CALL]
    # One skill call per iteration, each under its own step id (so its own idempotency key),
    # then the step after the loop.
    assert [e.step_id for e in calls] == ["look", "look#2", "look#3", "after"]


async def test_a_loop_that_reaches_its_bound_fails_the_session(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = parse_plan(
        LOOP.replace("max_iterations: 5", "max_iterations: 2").replace(
            "iteration >= 3", "iteration >= 9"
        ),
        "loop.yaml",
    )
    handle = await _start(env, plan, {"t": "T-1001"})
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "step 'poll' failed: loop reached max_iterations=2" in str(info.value.cause)


async def test_a_failing_step_in_a_parallel_group_fails_the_group(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await _start(env, TRIAGE, {"ticket_id": "T-1001", "order_id": "A-9999"})
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    message = str(info.value.cause)
    assert "step 'gather' failed: step 'order' failed" in message
    record = await env.runtime.store.get_session(handle.id.removeprefix("session-"))
    assert record is not None and record.status is SessionStatus.FAILED


TYPED = """
name: typed
steps:
  - id: classify
    type: agent
    model: demo-fast
    goal: Classify ticket {{ input.t }}.
    output_schema:
      type: object
      required: [severity]
      properties: {severity: {enum: [low, high]}}
  - id: escalate
    type: branch
    when: steps.classify.output.severity == "high"
    then:
      - {id: page, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
"""


async def _typed_session(
    env_factory: Callable[[Path], Awaitable[Env]], script: Path, answer: str
) -> tuple[Env, WorkflowHandle[object, SessionResult]]:
    """Run the typed plan against a model whose classify step answers `answer`."""
    turns = json.dumps([{"content": answer}])
    script.write_text(
        f"conversations:\n  - {{name: c, match: {{contains: 'Step: classify'}}, turns: {turns}}}\n"
    )
    env = await env_factory(script)
    return env, await _start(env, parse_plan(TYPED, "typed.yaml"), {"t": "T-1001"})


async def test_a_typed_agent_answer_is_parsed_and_branched_on(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    answer = '```json\n{"severity": "high"}\n```'
    _, handle = await _typed_session(env_factory, tmp_path / "typed.yaml", answer)
    result = await handle.result()
    assert result.outputs["classify"] == {"severity": "high"}
    final = result.final_output
    assert isinstance(final, dict) and final["ticket_id"] == "T-1001"


async def test_an_answer_that_breaks_the_output_schema_fails_the_step(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env, handle = await _typed_session(env_factory, tmp_path / "typed.yaml", '{"severity": "meh"}')
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "step 'classify' failed: the answer breaks output_schema: severity: 'meh'" in str(
        info.value.cause
    )
    # The broken answer is an outcome of the deployment that gave it.
    outcomes = await env.runtime.store.outcomes.list(handle.id.removeprefix("session-"))
    assert [(o.step_id, o.signal.value, o.score) for o in outcomes] == [
        ("classify", "schema_failure", 0.0)
    ]
    assert outcomes[0].deployment.startswith("demo-fast")


async def test_a_plan_built_in_python_runs_on_the_same_workflow(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    built = flow.plan(
        "built",
        flow.parallel(
            "both",
            flow.call_skill("ticket", "tickets.get", ticket_id="{{ input.t }}"),
            flow.call_skill("order", "orders.get", order_id="A-1002"),
        ),
        flow.branch(
            "pick",
            'steps.order.output.status == "delivered"',
            [flow.call_skill("delivered", "orders.get", order_id="A-1001")],
        ),
    )
    result = await (await _start(env, built, {"t": "T-1002"})).result()
    assert result.status is SessionStatus.COMPLETED
    assert result.final_output is None  # in transit: the branch had no else arm
    joined = result.outputs["both"]
    assert isinstance(joined, dict) and set(joined) == {"ticket", "order"}
