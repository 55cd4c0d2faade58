"""The Python plan builder compiles to the same Plan a YAML file loads."""

from __future__ import annotations

import pytest
from conftest import REPO
from pydantic import ValidationError

from orchestrator import flow
from orchestrator.plans import load_plan


def test_a_built_plan_equals_the_loaded_one() -> None:
    built = flow.plan(
        "change",
        flow.call_skill("look", "tickets.get", ticket_id="{{ input.t }}"),
        flow.parallel(
            "both",
            flow.call_skill("order", "orders.get", order_id="A-1001"),
            flow.approve("gate", "Go on with {{ steps.look.output.ticket_id }}?"),
        ),
        flow.branch(
            "pick",
            'steps.order.output.status == "delivered"',
            [flow.agent_step("reply", "Draft the reply.", model="fast-cheap", max_rounds=3)],
            [flow.loop("poll", "iteration >= 2", 3, flow.call_skill("again", "orders.get"))],
        ),
    )
    assert [s.id for s in built.all_steps()] == [
        "look",
        "both",
        "order",
        "gate",
        "pick",
        "reply",
        "poll",
        "again",
    ]
    text = built.model_dump_json(by_alias=True)
    assert flow.plan("change", *built.steps) == built
    assert '"else"' in text


def test_a_built_plan_is_checked_like_a_file() -> None:
    with pytest.raises(ValidationError, match="names step 'later', which does not run before"):
        flow.plan(
            "bad",
            flow.agent_step("first", "Use {{ steps.later.output }}"),
            flow.agent_step("later", "Go."),
        )


def test_the_example_plan_round_trips_through_the_builder() -> None:
    loaded = load_plan(REPO / "workflows/incident_triage.yaml")
    rebuilt = flow.plan(
        loaded.name,
        *loaded.steps,
        version=loaded.version,
        description=loaded.description,
        input_required=list(loaded.input_required),
        input_schema=loaded.input_schema,
    )
    assert rebuilt == loaded
