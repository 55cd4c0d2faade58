"""Who may resolve a session's setup ahead of its workflow, and the row its run writes.

Pure, without a worker: `ahead_refusal` (a starter that holds the runtime resolves the
setup only when it needs no write and no model call) and `SessionOpening.of` (the session
row and first event, built alike by the workflow and by `start_session`). The sessions
themselves are in tests/session/test_routing_sessions.py and
tests/reliability/test_load_small.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plans import parse_plan
from orchestrator.routing.policy import Budget
from orchestrator.session.pinning import first_route_request
from orchestrator.session.resolution import OPENING_INPUT_BYTES, ahead_refusal
from orchestrator.session.types import SessionCarry, SessionOpening, SessionStartInput, SessionState
from orchestrator.skills.models import SkillSpec

PLAN = parse_plan(
    """
name: ahead
version: "2"
steps:
  - {id: one, type: agent, goal: First., skills: [tickets.get], difficulty: low}
  - {id: two, type: skill, skill: "orders.get@^1", arguments: {}}
""",
    "ahead.yaml",
)


def _spec(name: str, version: str, deprecated: str | None = None) -> SkillSpec:
    return SkillSpec(
        name=name,
        version=version,
        description="d",
        risk="read_only",
        requires_approval=False,
        input_schema={"type": "object"},
        output_schema={"type": "object"},
        deprecated=deprecated,
    )


SKILLS = [_spec("tickets.get", "1.2.0"), _spec("orders.get", "1.0.0", "use orders.read")]


def _start(**fields: object) -> SessionStartInput:
    return SessionStartInput.model_validate(
        {"session_id": "s-1", "plan": PLAN, "input": {"ticket": "T-1"}, **fields}
    )


def _refusal(
    start: SessionStartInput, budgets: list[Budget] | None = None, classifier: str | None = None
) -> str | None:
    request = first_route_request(start, {spec.name: spec for spec in SKILLS})
    return ahead_refusal(start, request, budgets=budgets or [], classifier=classifier)


def test_a_fresh_start_of_an_agent_step_with_no_budget_may_be_resolved_ahead() -> None:
    assert _refusal(_start()) is None
    # A budget of another tenant does not apply to it.
    assert _refusal(_start(), budgets=[Budget(tenant="other", limit_usd=1.0)]) is None


@pytest.mark.parametrize(
    ("start", "how", "why"),
    [
        (
            _start(tenant="acme"),
            {"budgets": [Budget(tenant="acme", limit_usd=1.0)]},
            "a budget applies",
        ),
        (
            _start(plan=PLAN.model_copy(update={"steps": PLAN.steps[1:]})),
            {},
            "no agent step",
        ),
        (
            _start(
                plan=PLAN.model_copy(
                    update={
                        "steps": [
                            PLAN.steps[0].model_copy(update={"difficulty": None}),
                            *PLAN.steps[1:],
                        ]
                    }
                )
            ),
            {"classifier": "judge"},
            "classifier",
        ),
        (_start(input={"text": "x" * OPENING_INPUT_BYTES}), {}, "too large"),
        (
            _start(
                carry=SessionCarry(
                    state=SessionState(session_id="s-1", plan_name="ahead", plan_version="2")
                )
            ),
            {},
            "not a fresh start",
        ),
    ],
    ids=["budget", "no-agent-step", "classifier", "large-input", "continued"],
)
def test_what_leaves_the_setup_to_start_session(
    start: SessionStartInput, how: dict[str, Any], why: str
) -> None:
    refusal = _refusal(start, **how)
    assert refusal is not None and why in refusal


def test_an_undeclared_difficulty_without_a_classifier_needs_no_call() -> None:
    step = PLAN.steps[0].model_copy(update={"difficulty": None})
    start = _start(plan=PLAN.model_copy(update={"steps": [step, *PLAN.steps[1:]]}))
    assert _refusal(start) is None


def test_the_opening_holds_the_row_and_the_first_event_of_start_session() -> None:
    opening = SessionOpening.of(_start(tenant="acme", team="ops", requested_by="ana"), SKILLS)
    assert opening == SessionOpening(
        plan_name="ahead",
        plan_version="2",
        tenant="acme",
        team="ops",
        input={"ticket": "T-1"},
        requested_by="ana",
        skills={"tickets.get": "1.2.0", "orders.get": "1.0.0"},
        skill_refs=["tickets.get", "orders.get@^1"],
        deprecated={"orders.get@1.0.0": "use orders.read"},
    )
