"""The session workflow's decisions as pure functions: no worker, no server, no history.

Boundaries and the router's question (`pinning`), which failures fail over, the limits
checked before each model call (`limits`), and which step type runs a step.
"""

from __future__ import annotations

import pytest

from orchestrator.exceptions import (
    DeploymentUnavailable,
    PermanentError,
    ProviderTimeoutError,
    to_failure,
)
from orchestrator.plans import parse_plan
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.session.limits import fanout_limit, limit_reached, usd
from orchestrator.session.pinning import (
    boundary_for,
    carries_over,
    failover_prompt_chars,
    named_pin,
    reuse_key,
    route_target,
    unavailable,
)
from orchestrator.session.step_types import kind_of
from orchestrator.session.types import Boundary, ModelSwitchRequest, SessionState, StepState


def _step(**fields: object) -> AgentStep:
    return AgentStep.model_validate({"id": "draft", "goal": "write it", **fields})


def _plan(limits: dict[str, object] | None = None) -> Plan:
    text = "name: p\nsteps:\n  - {id: draft, type: agent, goal: g}\n"
    plan = parse_plan(text)
    if limits is not None:
        plan = Plan.model_validate({**plan.model_dump(by_alias=True), "limits": limits})
    return plan


def _boundary(**flags: bool) -> Boundary:
    base = {
        "failover": False,
        "escalation": False,
        "first_pin": False,
        "after_approval": False,
        "continued_unrouted": False,
    }
    return boundary_for(**(base | flags))


def test_boundaries_in_order_of_precedence() -> None:
    assert _boundary() is Boundary.STEP_CHANGE
    assert _boundary(first_pin=True) is Boundary.SESSION_START
    assert _boundary(after_approval=True) is Boundary.AFTER_APPROVAL
    assert _boundary(continued_unrouted=True) is Boundary.CONTINUE_AS_NEW
    # A failover outranks everything; an escalation everything but a failover.
    every = dict.fromkeys(["escalation", "first_pin", "after_approval", "continued_unrouted"], True)
    assert _boundary(failover=True, **every) is Boundary.FORCED_FAILOVER
    assert _boundary(**every) is Boundary.ESCALATION
    assert _boundary(first_pin=True, after_approval=True) is Boundary.SESSION_START


def test_route_target_precedence() -> None:
    switch = ModelSwitchRequest(model="big", reason="customer asked")
    step = _step(model="fast", accept="size(answer) > 3", escalate_to="strong")
    failed = route_target(
        step, "plan-model", failover_name="fast", failed=True, escalate=None, switch=switch
    )
    assert (failed.name, failed.takes_switch) == ("fast", False)
    assert failed.why == "failover within the same constraints"
    up = route_target(
        step, "plan-model", failover_name=None, failed=False, escalate="too short", switch=switch
    )
    assert (up.name, up.why) == ("strong", "cascade: too short")
    asked = route_target(
        step, "plan-model", failover_name=None, failed=False, escalate=None, switch=switch
    )
    assert (asked.name, asked.takes_switch) == ("big", True)
    assert asked.why == "switch requested: customer asked"
    named = route_target(
        step, "plan-model", failover_name=None, failed=False, escalate=None, switch=None
    )
    assert (named.name, named.why) == ("fast", "fast named by the step")
    plain = _step()
    default = route_target(
        plain, "plan-model", failover_name=None, failed=False, escalate=None, switch=None
    )
    assert (default.name, default.why) == ("plan-model", "plan-model is the plan default")
    anything = route_target(
        plain, None, failover_name=None, failed=False, escalate=None, switch=None
    )
    assert (anything.name, anything.why) == (None, "any model")


def test_named_pin_without_the_router() -> None:
    switch = ModelSwitchRequest(model="big")
    assert named_pin(_step(model="m"), "p", "d", switch) == ("big", "switch requested: requested")
    assert named_pin(_step(model="m"), "p", "d", None) == ("m", "named by the step")
    assert named_pin(_step(), "p", "d", None) == ("p", "plan default")
    assert named_pin(_step(), None, "d", None) == ("d", "registry default")


def test_failover_choices() -> None:
    # Down deployments fail over; a request that can never succeed fails the step.
    assert unavailable(to_failure(ProviderTimeoutError("slow")))
    assert unavailable(to_failure(DeploymentUnavailable("retry after 600s")))
    assert not unavailable(to_failure(PermanentError("400 bad request")))
    assert not unavailable(ValueError("not a failure of ours"))
    assert carries_over("carry_over")
    assert not carries_over("restart_step")
    # A carried conversation must fit the next deployment; a restart only the start.
    assert failover_prompt_chars(True, 9_000, 300) == 9_000
    assert failover_prompt_chars(False, 9_000, 300) == 300
    assert failover_prompt_chars(True, 100, 300) == 300
    # A re-run reuses a tool result by skill and arguments, whatever their key order.
    assert reuse_key("refund", {"a": 1, "b": 2}) == reuse_key("refund", {"b": 2, "a": 1})
    assert reuse_key("refund", {"a": 1}) != reuse_key("refund", {"a": 2})


def test_limits_before_each_model_call() -> None:
    step = _step(max_cost_usd=0.5)
    session = SessionState(session_id="s", plan_name="p", plan_version="1")
    state = StepState(id="draft", type="agent")
    assert limit_reached(_plan(), step, session, state) is None
    limited = _plan({"max_cost_usd": 1.0, "max_model_calls": 3})
    session.cost_usd, session.model_calls = 0.99, 2
    assert limit_reached(limited, step, session, state) is None
    session.model_calls = 3
    assert limit_reached(limited, step, session, state) == (
        "model call limit 3 reached (3 calls made)"
    )
    session.cost_usd = 1.0
    assert limit_reached(limited, step, session, state) == "cost limit $1 reached ($1 spent)"
    session.cost_usd, session.model_calls, state.cost_usd = 0.0, 0, 0.5
    assert limit_reached(limited, step, session, state) == (
        "step cost limit $0.5 reached ($0.5 spent in step 'draft')"
    )
    assert usd(0.000123) == "$0.000123"
    assert usd(0) == "$0"


def test_fanout_limit_counts_every_parallel_call() -> None:
    session = SessionState(session_id="s", plan_name="p", plan_version="1", model_calls=1)
    limited = _plan({"max_model_calls": 4})
    assert fanout_limit(_plan(), session, 50) is None
    assert fanout_limit(limited, session, 3) is None
    assert fanout_limit(limited, session, 4) == (
        "model call limit 4 would be passed: 1 calls made, this step makes up to 4"
    )


@pytest.mark.parametrize(
    "step",
    [
        "{id: a, type: agent, goal: g}",
        "{id: a, type: skill, skill: s}",
        "{id: a, type: approval, summary: s}",
        "{id: a, type: ensemble, goal: g, models: [x, y]}",
        "{id: a, type: subplan, plan: other}",
        "{id: a, type: branch, when: 'true', then: [{id: b, type: approval, summary: s}]}",
        "{id: a, type: parallel, steps: [{id: b, type: approval, summary: s}]}",
        "{id: a, type: loop, until: 'true', max_iterations: 2,"
        " steps: [{id: b, type: approval, summary: s}]}",
    ],
)
def test_every_built_in_step_type_has_a_runner(step: str) -> None:
    parsed = parse_plan(f"name: p\nsteps:\n  - {step}\n").steps[0]
    kind = kind_of(parsed)
    expected = "default" if parsed.type == "agent" else None
    assert kind.task_type(parsed) == expected
