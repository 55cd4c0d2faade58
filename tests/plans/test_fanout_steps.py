"""Ensemble steps and sub-plans on a real dev server, and their load-time checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, Env
from temporalio.client import WorkflowFailureError
from typer.testing import CliRunner

from orchestrator import flow
from orchestrator.cli import app
from orchestrator.exceptions import PlanError
from orchestrator.plans import Plan, parse_plan
from orchestrator.plans.subplans import resolve_subplans
from orchestrator.service import decide_approval, start_session
from orchestrator.session.fanout import child_session_id
from orchestrator.session_start import StartOptions
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.testing import wait_for_pending_approval

HERE = Path(__file__).parent
SCRIPT = HERE / "ensemble_subplans.yaml"
PRICE = {
    "type": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}},
}


def _ensemble_plan(**fields: object) -> Plan:
    step = {
        "id": "price",
        "type": "ensemble",
        "goal": "What is the refund for order {{ input.order_id }}?",
        "models": ["demo-strong", "demo-fast", "reasoning-strong"],
        "output_schema": PRICE,
        **fields,
    }
    return Plan.model_validate({"name": "ensemble", "steps": [step]})


async def test_vote_keeps_the_answer_most_models_gave(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await start_session(
        env.client, _ensemble_plan(), {"order_id": "A-1"}, task_queue=env.settings.task_queue
    )
    result = await handle.result()
    # Two strong answers agree (key order and spacing do not split them); the fast one loses.
    assert result.final_output == {"amount": 42.5, "currency": "EUR"}
    session_id = handle.id.removeprefix("session-")
    events = await env.runtime.store.list_events(session_id)
    merged = [e for e in events if e.kind == EventKind.ENSEMBLE_MERGED]
    assert len(merged) == 1
    assert merged[0].payload["tally"] == {
        '{"amount": 42.5, "currency": "EUR"}': 2,
        '{"amount": 40, "currency": "EUR"}': 1,
    }
    asked = [e.model for e in events if e.kind == EventKind.MODEL_CALL]
    assert sorted(m or "" for m in asked) == ["demo-fast", "demo-strong", "reasoning-strong"]
    # Each member's cost counts toward the session.
    assert result.cost_usd > 0 and result.input_tokens > 0


async def test_vote_without_enough_agreement_fails_the_step(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await start_session(
        env.client,
        _ensemble_plan(min_votes=3),
        {"order_id": "A-1"},
        task_queue=env.settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "ensemble: best answer has 2 of 3 votes, needed 3" in str(failure.value.cause)


async def test_verifier_gives_the_final_answer(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = flow.plan(
        "verified",
        flow.ensemble(
            "price",
            "What is the refund for order {{ input.order_id }}?",
            ["demo-strong", "demo-fast"],
            verifier="demo-strong",
            output_schema=PRICE,
        ),
    )
    handle = await start_session(
        env.client, plan, {"order_id": "A-1"}, task_queue=env.settings.task_queue
    )
    result = await handle.result()
    assert result.final_output == {"amount": 42.5, "currency": "EUR"}
    served = [r.conversation for r in env.replay.requests]
    assert sorted(c or "" for c in served) == ["fast", "strong", "verifier"]
    # The verifier came last, after both members had answered.
    assert served[-1] == "verifier"
    session_id = handle.id.removeprefix("session-")
    (merged,) = await env.runtime.store.list_events(session_id, kind=EventKind.ENSEMBLE_MERGED)
    assert merged.payload["merge"] == "verifier"
    assert [b["model"] for b in merged.payload["ballots"]] == ["demo-strong", "demo-fast"]


CHILD = parse_plan(
    """
name: child-refund
input_required: [order_id]
steps:
  - id: gate
    type: approval
    summary: Refund order {{ input.order_id }}
  - {id: order, type: skill, skill: orders.get, arguments: {order_id: "{{ input.order_id }}"}}
""",
    "child.yaml",
)

PARENT = parse_plan(
    """
name: parent
input_required: [ticket_id, order_id]
steps:
  - {id: ticket, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.ticket_id }}"}}
  - id: refund
    type: subplan
    plan: child-refund
    input: {order_id: "{{ input.order_id }}"}
  - {id: after, type: skill, skill: orders.get,
     arguments: {order_id: "{{ steps.refund.output.order_id }}"}}
""",
    "parent.yaml",
)


async def test_subplan_runs_as_a_child_session_with_its_own_approval(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    handle = await start_session(
        env.client,
        PARENT,
        {"ticket_id": "T-1001", "order_id": "A-1001"},
        StartOptions(subplans={"child-refund": CHILD}, requested_by="sam"),
        task_queue=env.settings.task_queue,
    )
    parent_id = handle.id.removeprefix("session-")
    child_id = child_session_id(parent_id, "refund")
    # The child's gate waits in the child session, under its own id.
    pending = await wait_for_pending_approval(env.runtime.store, child_id)
    assert pending.summary == "Refund order A-1001"
    # The parent's requester is the child's too: they cannot approve it themselves.
    with pytest.raises(Exception, match="cannot decide"):
        await decide_approval(
            env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="sam"
        )
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    refund = result.outputs["refund"]
    assert isinstance(refund, dict) and refund["order_id"] == "A-1001"
    assert result.outputs["after"] == refund
    started = [
        e
        for e in await env.runtime.store.list_events(parent_id)
        if e.kind == EventKind.SUBPLAN_STARTED
    ]
    assert [e.payload["session_id"] for e in started] == [child_id]
    child = await env.client.get_workflow_handle(f"session-{child_id}").describe()
    assert child.parent_id == handle.id


async def test_unknown_subplan_fails_the_session_at_start(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = flow.plan("lonely", flow.subplan("sub", "no-such-plan"))
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    text, error = "", failure.value.cause
    while error is not None:  # the activity's error, under the workflow's
        text += f" {error}"
        error = error.__cause__ or getattr(error, "cause", None)
    assert "runs sub-plan 'no-such-plan', which is not a plan of the project" in text
    assert "customer-refund" in text  # the project's plans are listed


def test_cycles_and_missing_plans_are_refused() -> None:
    a = flow.plan("a", flow.subplan("to-b", "b"))
    b = flow.plan("b", flow.subplan("to-a", "a"))
    with pytest.raises(PlanError, match="cycle: a -> b -> a"):
        resolve_subplans(a, {"b": b, "a": a})
    with pytest.raises(PlanError, match="runs sub-plan 'b', which is not a plan"):
        resolve_subplans(a, {})
    c = flow.plan("c", flow.call_skill("t", "tickets.get", ticket_id="T-1"))
    assert resolve_subplans(flow.plan("d", flow.subplan("x", "c")), {"c": c}) == {"c": c}


def test_ensemble_fields_are_checked_at_load() -> None:
    with pytest.raises(PlanError, match="merge: verifier and a verifier model go together"):
        parse_plan(
            "name: e\nsteps:\n  - {id: q, type: ensemble, goal: g, models: [a, b],"
            " merge: verifier}\n",
            "e.yaml",
        )
    with pytest.raises(PlanError, match=r"steps.0.models: .*at least 2"):
        parse_plan("name: e\nsteps:\n  - {id: q, type: ensemble, goal: g, models: [a]}\n", "e.yaml")


def test_validate_names_unknown_plans_and_models_with_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_PROJECT_DIR", str(REPO))
    (tmp_path / "outer.yaml").write_text(
        "name: outer\nsteps:\n"
        "  - {id: q, type: ensemble, goal: g, models: [demo-strong, nope]}\n"
        "  - id: sub\n    type: subplan\n    plan: missing\n"
    )
    (tmp_path / "a.yaml").write_text("name: a\nsteps:\n  - {id: s, type: subplan, plan: b}\n")
    (tmp_path / "b.yaml").write_text("name: b\nsteps:\n  - {id: s, type: subplan, plan: a}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    out = result.output.replace("\n", "")
    assert "outer.yaml: line 3, column 60: steps.0.models.1: unknown model or alias 'nope'" in out
    assert "outer.yaml: line 6, column 11: steps.1.plan: unknown plan 'missing'" in out
    assert "sub-plans run each other in a cycle: a -> b -> a" in out
    # A file on its own is checked against the project's other plans.
    (tmp_path / "uses_demo.yaml").write_text(
        "name: uses-demo\nsteps:\n  - {id: s, type: subplan, plan: customer-refund}\n"
    )
    alone = CliRunner().invoke(app, ["validate", str(tmp_path / "uses_demo.yaml")])
    assert alone.exit_code == 0, alone.output


async def test_plan_output_schema_types_the_session_result(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    strict = _ensemble_plan().model_copy(
        update={"output_schema": {**PRICE, "properties": {"amount": {"minimum": 50}}}}
    )
    handle = await start_session(
        env.client, strict, {"order_id": "A-1"}, task_queue=env.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "final output breaks the plan's output_schema: amount: 42.5 is less than the" in str(
        failure.value.cause
    )
    record = await env.runtime.store.get_session(handle.id.removeprefix("session-"))
    assert record is not None and record.status is SessionStatus.FAILED
    typed = _ensemble_plan().model_copy(update={"output_schema": PRICE})
    done = await start_session(
        env.client, typed, {"order_id": "A-2"}, task_queue=env.settings.task_queue
    )
    assert (await done.result()).final_output == {"amount": 42.5, "currency": "EUR"}


async def test_plan_limits_hold_for_an_ensemble_before_any_call(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = Plan.model_validate(
        {**_ensemble_plan().model_dump(by_alias=True), "limits": {"max_model_calls": 2}}
    )
    handle = await start_session(
        env.client, plan, {"order_id": "A-1"}, task_queue=env.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "model call limit 2 would be passed: 0 calls made, this step makes up to 3" in str(
        failure.value.cause
    )
    assert env.replay.requests == []
