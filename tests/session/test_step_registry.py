"""A new step type is one module with its plan model: registered, parsed, run by the workflow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import REPO, Env
from temporalio.client import WorkflowFailureError

from orchestrator.exceptions import PlanError
from orchestrator.plans import Plan, parse_plan
from orchestrator.plans.registry import (
    RegisteredStep,
    StepError,
    StepHost,
    register_step,
    registered_model,
)
from orchestrator.plans.schemas import schema_faults
from orchestrator.service import query_state, start_session
from orchestrator.session.step_types import kind_of
from orchestrator.store.records import SessionStatus
from orchestrator.types import JsonValue

SCRIPT = REPO / "model_scripts/customer_refund.yaml"
"""Any script serves: these plans make no model calls."""


@register_step
class ShoutStep(RegisteredStep):
    """Say an input field in capitals (the whole of a step type: its model and its run)."""

    type: Literal["shout"]
    field: str

    async def run(self, host: StepHost) -> JsonValue:
        value = host.inputs.get(self.field)
        if not isinstance(value, str):
            raise StepError(f"input {self.field!r} is not text")
        return value.upper() + "!"


@register_step
class TwiceStep(RegisteredStep):
    """Run the steps it holds two times and give every output (a step that holds steps)."""

    type: Literal["twice"]
    steps: list[ShoutStep]
    note: str = ""
    """Templated like any step's text: checked against earlier steps at load time."""

    def blocks(self) -> list[tuple[str, list[Any]]]:
        return [("steps", list(self.steps))]

    def templates(self) -> list[str]:
        return [self.note]

    def skill_refs(self) -> list[str]:
        return ["tickets.get"] if self.note == "with a skill" else []

    async def run(self, host: StepHost) -> JsonValue:
        outputs: list[JsonValue] = []
        for again in ("", "-2"):
            for step in self.steps:
                outputs.append(await host.run_step(step.model_copy(update={"id": step.id + again})))
        return outputs


PLAN = """
name: registered
steps:
  - {id: greet, type: shout, field: name}
  - id: echo
    type: twice
    steps: [{id: loud, type: shout, field: name}]
"""


def test_a_registered_step_type_parses_dumps_and_dispatches() -> None:
    plan = parse_plan(PLAN, "registered.yaml")
    greet, echo = plan.steps
    assert isinstance(greet, ShoutStep) and greet.field == "name"
    assert isinstance(echo, TwiceStep) and echo.steps[0].id == "loud"
    dumped = plan.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["steps"][1] == {
        "id": "echo",
        "type": "twice",
        "steps": [{"id": "loud", "type": "shout", "field": "name"}],
        "note": "",
    }
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert registered_model("shout") is ShoutStep
    assert kind_of(greet) is kind_of(echo)  # both run through their model's own `run`
    assert kind_of(plan.steps[0]) is not kind_of(
        parse_plan("name: a\nsteps:\n  - {id: a, type: approval, summary: s}\n").steps[0]
    )


def test_registered_step_faults_and_unknown_tags_are_plan_errors() -> None:
    with pytest.raises(PlanError, match=r"steps\.0: field: Field required"):
        parse_plan("name: x\nsteps:\n  - {id: a, type: shout}\n", "f.yaml")
    with pytest.raises(PlanError, match=r"Input tag 'dance' found using 'type'.*'shout'"):
        parse_plan("name: x\nsteps:\n  - {id: a, type: dance}\n", "f.yaml")


def test_a_registered_step_is_checked_like_a_built_in_one() -> None:
    # The steps it holds share the plan's ids; its templates refer to earlier steps only;
    # the skills it names are resolved at session start like any step's.
    holder = (
        "  - {{id: echo, type: twice, note: '{note}',"
        " steps: [{{id: {inner}, type: shout, field: n}}]}}\n"
    )
    first = "name: x\nsteps:\n  - {id: greet, type: shout, field: n}\n"
    with pytest.raises(PlanError, match="duplicate step id 'greet'"):
        parse_plan(first + holder.format(note="", inner="greet"))
    with pytest.raises(PlanError, match="names step 'later', which does not run before"):
        parse_plan(first + holder.format(note="{{ steps.later.output }}", inner="loud"))
    plan = parse_plan(first + holder.format(note="with a skill", inner="loud"))
    assert plan.skill_refs() == ["tickets.get"]
    assert [s.id for s in plan.all_steps()] == ["greet", "echo", "loud"]


def test_a_taken_tag_is_refused() -> None:
    class Agent(RegisteredStep):
        type: Literal["agent"]

    class Shout(RegisteredStep):
        type: Literal["shout"]

    with pytest.raises(ValueError, match="built in"):
        register_step(Agent)
    with pytest.raises(ValueError, match="already registered"):
        register_step(Shout)
    assert register_step(ShoutStep) is ShoutStep  # the same class again is a no-op


async def test_the_workflow_runs_a_registered_step_type(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = parse_plan(PLAN, "registered.yaml")
    handle = await start_session(
        env.client, plan, {"name": "ana"}, task_queue=env.settings.task_queue
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    assert result.outputs["greet"] == "ANA!"
    assert result.final_output == ["ANA!", "ANA!"]
    state = await query_state(env.client, handle.id.removeprefix("session-"))
    assert [(s.id, s.type, s.status) for s in state.steps] == [
        ("greet", "shout", "completed"),
        ("echo", "twice", "completed"),
        ("loud", "shout", "completed"),
        ("loud-2", "shout", "completed"),
    ]


async def test_a_registered_step_failure_fails_the_session(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(SCRIPT)
    plan = parse_plan("name: bad\nsteps:\n  - {id: greet, type: shout, field: age}\n")
    handle = await start_session(env.client, plan, {"age": 3}, task_queue=env.settings.task_queue)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    state = await query_state(env.client, handle.id.removeprefix("session-"))
    assert state.status is SessionStatus.FAILED
    assert state.error == "step 'greet' failed: input 'age' is not text"


def test_the_plan_schema_knows_the_registered_types() -> None:
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    loud = {"id": "a", "type": "shout", "field": "name"}
    assert schema_faults(schema, {"name": "x", "steps": [loud]}) == []
    assert schema_faults(schema, {"name": "x", "steps": [{"id": "a", "type": "dance"}]})
