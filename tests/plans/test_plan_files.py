"""Bad plan files are refused with file, line, column and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.exceptions import PlanError
from orchestrator.plans import AgentStep, load_plan, load_plans, parse_plan


def test_the_example_plans_load() -> None:
    plans = load_plans(REPO / "workflows")
    plan = plans["customer-refund"]
    assert plan.step_ids() == ["investigate", "reply"]
    first = plan.steps[0]
    assert isinstance(first, AgentStep) and "payments.refund" in first.skills


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nsteps: []\n",
            "f.yaml: line 2, column 8: steps: List should have at least 1 item",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    type: agent\n    goal: g\n    max_rounds: 0\n",
            "f.yaml: line 6, column 17: steps.0.max_rounds:"
            " Input should be greater than or equal to 1",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    type: skill\n",
            "f.yaml: line 3, column 5: steps.0.skill: Field required",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    type: dance\n",
            "f.yaml: line 3, column 5: steps.0: Input tag 'dance' found using 'type'",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    type: agent\n    goal: g\n    modle: m\n",
            "f.yaml: line 6, column 12: steps.0.modle: Extra inputs are not permitted",
        ),
        (
            "name: x\nsteps:\n  - {id: a, type: agent, goal: g}\n"
            "  - {id: a, type: agent, goal: h}\n",
            "f.yaml: line 4, column 10: steps.1.id: duplicate step id 'a'",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    type: agent\n    goal: 'use {{ steps.b.output }}'\n"
            "  - {id: b, type: agent, goal: g}\n",
            "f.yaml: line 3, column 5: steps.0: template {{ steps.b.output }} names step 'b',"
            " which does not run before this one",
        ),
        (
            "name: x\ninput_required: [ticket_id]\nsteps:\n  - id: a\n    type: agent\n"
            "    goal: '{{ input.order }}'\n",
            "names input 'order', which input_required does not declare",
        ),
        ("name: x\nsteps:\n  - id: a\n   type: agent\n", "f.yaml: not valid YAML"),
        ("- just\n- a list\n", "f.yaml: a plan must be a YAML mapping"),
        (
            "name: Bad Name\nsteps:\n  - {id: a, type: agent, goal: g}\n",
            "f.yaml: line 1, column 7: name:",
        ),
    ],
)
def test_bad_plans_name_what_and_where(text: str, expected: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "f.yaml")
    assert expected in str(info.value)


def test_every_fault_is_reported_at_once() -> None:
    text = "name: x\nsteps:\n  - {id: a, type: agent, goal: '', max_rounds: 0}\n"
    with pytest.raises(PlanError) as info:
        parse_plan(text, "f.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert any("steps.0.goal" in line for line in lines)
    assert any("steps.0.max_rounds" in line for line in lines)


def test_missing_file_and_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read plan file"):
        load_plan(tmp_path / "nope.yaml")
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text("name: same\nsteps:\n  - {id: a, type: agent, goal: g}\n")
    with pytest.raises(PlanError, match="plan name 'same' is already used by"):
        load_plans(tmp_path)
