"""The limit check run before each model call: which limit speaks first, and its message."""

from __future__ import annotations

import pytest

from orchestrator.plans.models import AgentStep, Plan
from orchestrator.session.limits import limit_reached, usd
from orchestrator.session.types import SessionState, StepState


def _plan(limits: dict[str, float] | None, step_cost: float | None = None) -> Plan:
    step: dict[str, object] = {"id": "work", "type": "agent", "goal": "g"}
    if step_cost is not None:
        step["max_cost_usd"] = step_cost
    raw: dict[str, object] = {"name": "p", "steps": [step]}
    if limits is not None:
        raw["limits"] = limits
    return Plan.model_validate(raw)


def _check(plan: Plan, *, spent: float, calls: int, step_spent: float) -> str | None:
    step = plan.steps[0]
    assert isinstance(step, AgentStep)
    session = SessionState(
        session_id="s", plan_name="p", plan_version="1", cost_usd=spent, model_calls=calls
    )
    return limit_reached(
        plan, step, session, StepState(id="work", type="agent", cost_usd=step_spent)
    )


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.5, "$0.5"), (0.036000000000000004, "$0.036"), (1e-05, "$0.00001"), (2, "$2"), (0, "$0")],
)
def test_usd_reads_like_money(amount: float, text: str) -> None:
    assert usd(amount) == text


def test_no_limits_never_stop_a_session() -> None:
    assert _check(_plan(None), spent=1e6, calls=10_000, step_spent=1e6) is None


def test_under_every_limit_the_call_is_made() -> None:
    plan = _plan({"max_cost_usd": 1.0, "max_model_calls": 5}, step_cost=0.5)
    assert _check(plan, spent=0.99, calls=4, step_spent=0.49) is None


def test_the_session_cost_limit_speaks_first() -> None:
    plan = _plan({"max_cost_usd": 1.0, "max_model_calls": 5}, step_cost=0.5)
    message = _check(plan, spent=1.25, calls=9, step_spent=0.75)
    assert message == "cost limit $1 reached ($1.25 spent)"


def test_the_model_call_limit_counts_every_call() -> None:
    plan = _plan({"max_model_calls": 5})
    assert (
        _check(plan, spent=0, calls=5, step_spent=0) == "model call limit 5 reached (5 calls made)"
    )


def test_the_step_limit_reads_the_step_spend_only() -> None:
    plan = _plan({"max_cost_usd": 10.0}, step_cost=0.5)
    assert _check(plan, spent=3.0, calls=1, step_spent=0.2) is None
    message = _check(plan, spent=3.0, calls=1, step_spent=0.5)
    assert message == "step cost limit $0.5 reached ($0.5 spent in step 'work')"
