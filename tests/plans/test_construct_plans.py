"""Branch, parallel and loop steps: their faults are refused at load time with positions."""

from __future__ import annotations

import pytest

from orchestrator.exceptions import PlanError
from orchestrator.plans import BranchStep, LoopStep, ParallelStep, parse_plan

GOOD = """
name: x
input_required: [t]
steps:
  - id: both
    type: parallel
    steps:
      - {id: a, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
      - {id: b, type: skill, skill: orders.get, arguments: {order_id: "{{ input.t }}"}}
  - id: pick
    type: branch
    when: steps.a.output.status == "open"
    then:
      - id: again
        type: loop
        max_iterations: 3
        until: steps.c.output.status == "open"
        steps:
          - {id: c, type: skill, skill: tickets.get, arguments: {ticket_id: "{{ input.t }}"}}
    else:
      - {id: d, type: agent, goal: "Why is {{ steps.b.output.order_id }} late?"}
"""


def test_nested_constructs_load_and_list_their_skills() -> None:
    plan = parse_plan(GOOD, "x.yaml")
    both, pick = plan.steps
    assert isinstance(both, ParallelStep) and isinstance(pick, BranchStep)
    assert isinstance(pick.then[0], LoopStep)
    assert [s.id for s in pick.else_] == ["d"]
    assert plan.skill_refs() == ["tickets.get", "orders.get"]
    assert [s.id for s in plan.all_steps()] == ["both", "a", "b", "pick", "again", "c", "d"]


def _steps(body: str) -> str:
    return "name: x\nsteps:\n" + body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _steps(
                "  - id: p\n    type: parallel\n    steps:\n      - {id: a, type: agent, goal: g}\n"
            ),
            "f.yaml: line 6, column 9: steps.0.steps.0: agent steps cannot run in a parallel group",
        ),
        (
            _steps(
                "  - id: p\n    type: branch\n    when: 'true'\n    then:\n"
                "      - {id: a, type: agent, goal: g, max_rounds: 0}\n"
            ),
            "f.yaml: line 7, column 51: steps.0.then.0.max_rounds:"
            " Input should be greater than or equal to 1",
        ),
        (
            _steps(
                "  - id: p\n    type: branch\n    when: 'steps.a.output =='\n    then:\n"
                "      - {id: a, type: agent, goal: g}\n"
            ),
            "f.yaml: line 5, column 11: steps.0.when: Value error, not a valid CEL expression",
        ),
        (
            _steps(
                "  - id: p\n    type: branch\n    when: 'steps.later.output == 1'\n    then:\n"
                "      - {id: a, type: agent, goal: g}\n"
                "  - {id: later, type: agent, goal: g}\n"
            ),
            "f.yaml: line 5, column 11: steps.0.when: condition names step 'later'",
        ),
        (
            _steps(
                "  - id: p\n    type: branch\n    when: 'true'\n    then:\n"
                "      - {id: a, type: agent, goal: '{{ steps.b.output }}'}\n"
                "      - {id: b, type: agent, goal: g}\n"
            ),
            "f.yaml: line 7, column 9: steps.0.then.0: template {{ steps.b.output }}"
            " names step 'b', which does not run before this one",
        ),
        (
            _steps(
                "  - id: p\n    type: loop\n    until: 'true'\n    max_iterations: 2\n    steps:\n"
                "      - {id: p, type: agent, goal: g}\n"
            ),
            "f.yaml: line 8, column 14: steps.0.steps.0.id: duplicate step id 'p'",
        ),
        (
            _steps(
                "  - id: p\n    type: loop\n    until: 'true'\n    steps:\n"
                "      - {id: a, type: agent, goal: g}\n"
            ),
            "f.yaml: line 3, column 5: steps.0.max_iterations: Field required",
        ),
    ],
)
def test_broken_constructs_are_refused_with_positions(text: str, expected: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "f.yaml")
    assert str(info.value).startswith(expected), str(info.value)
