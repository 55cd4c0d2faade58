"""What a session resolves at its start, and who may resolve it.

The `start_session` local activity resolves a fresh session's skills, sub-plans and
models, routes its first step ahead and writes its row. A starter that holds the runtime
(`service.launch` given one: a stack, the tests' workers, the benches) can resolve the
same setup before the workflow exists, with no write at all (`prepare_start`): the run
then takes it from its start input and skips the local activity, its marker and the
activation it resolves (`patches.OPENING_GENERATION`), and its first activity writes the
row (`SessionOpening.of`). Both sides resolve through `resolve` and `setup_of`, so they
agree. `ahead_refusal` is pure (tests call it without a worker); the rest reads the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.exceptions import ApplicationError

from orchestrator.exceptions import (
    ConfigError,
    PlanError,
    RoutingError,
    StoreError,
    UnknownSkillError,
)
from orchestrator.plans.loader import load_plans
from orchestrator.plans.models import AgentStep, Plan
from orchestrator.plans.subplans import resolve_subplans
from orchestrator.routing.budgets import applicable
from orchestrator.routing.policy import Budget
from orchestrator.routing.types import RouteRequest
from orchestrator.runtime import Runtime
from orchestrator.session import patches
from orchestrator.session.call_timeouts import call_timeouts
from orchestrator.session.names import workflow_id_for
from orchestrator.session.payloads import json_size
from orchestrator.session.pinning import first_route_request
from orchestrator.session.routing_activities import RoutingActivities
from orchestrator.session.types import (
    CallContext,
    FirstRoute,
    RouteInput,
    SessionSetup,
    SessionStartInput,
)
from orchestrator.skills.models import SkillSpec

__all__ = [
    "OPENING_INPUT_BYTES",
    "RESOLVE_ERRORS",
    "Resolution",
    "ahead_refusal",
    "prepare_start",
    "resolve",
    "route_ahead",
    "setup_of",
]

RESOLVE_ERRORS = (UnknownSkillError, ConfigError, RoutingError, PlanError)
"""What `resolve` raises for a plan this runtime cannot run (the activity fails the
session's start with it; a starter leaves the start to the activity, which says so)."""

OPENING_INPUT_BYTES = 16 * 1024
"""The largest session input a starter resolves ahead for: the input rides once more in
the run's first activity (`SessionOpening.input`, for the session row), so a large one
is left to `start_session`, which reads it from the start input."""


@dataclass(frozen=True)
class Resolution:
    """A session's skills (by the plan's references) and sub-plans, resolved."""

    specs: list[SkillSpec]
    subplans: dict[str, Plan]


def resolve(runtime: Runtime, start: SessionStartInput) -> Resolution:
    """The skill versions, models, policy and sub-plans `start`'s plan names, resolved.

    A new session gets the contracts `connectors sync` wrote since the worker started.

    Raises:
        UnknownSkillError, ConfigError, RoutingError, PlanError: the plan names what this
            runtime does not hold (`RESOLVE_ERRORS`).
    """
    runtime.skills.refresh()
    specs = runtime.skills.resolve_refs(start.plan.skill_refs())
    for step in start.plan.steps:
        if isinstance(step, AgentStep):
            runtime.models.resolve(step.model or start.plan.model)
            if step.escalate_to:
                runtime.models.resolve(step.escalate_to)
    runtime.router.policy(start.plan.policy)
    subplans = resolve_subplans(
        start.plan,
        start.subplans,
        lambda: load_plans(runtime.settings.project_dir / "workflows"),
    )
    return Resolution(specs=specs, subplans=subplans)


def setup_of(
    runtime: Runtime, resolved: Resolution, first_route: FirstRoute | None
) -> SessionSetup:
    """The setup a run keeps for life, from what was resolved (this generation's)."""
    return SessionSetup(
        skills=resolved.specs,
        default_model=runtime.models.default_model,
        models=runtime.models.names,
        subplans=resolved.subplans,
        call_timeouts=call_timeouts(runtime.models),
        generation=patches.GENERATION,
        first_route=first_route,
    )


async def route_ahead(
    routing: RoutingActivities, request: RouteRequest | None, ctx: CallContext
) -> FirstRoute | None:
    """The first step's routing decision, taken before the workflow asks for it.

    It spares the workflow an activation and a marker before its first model call.
    `request` is the question the workflow will ask (`first_route_request`), which takes
    the answer only if its own is the same. None when there is no such question, or the
    router refuses it (no deployment fits, the budget is spent): the workflow then asks
    `orchestrator.route`, which fails the step as before.
    """
    if request is None:
        return None
    call = RouteInput(
        ctx=ctx.model_copy(update={"step_id": request.step_id}),
        request=request,
        reserve_budget=True,
    )
    try:
        decision = await routing.decide(call)
    except ApplicationError:
        return None
    return FirstRoute(request=request, decision=decision)


def ahead_refusal(
    start: SessionStartInput,
    request: RouteRequest | None,
    *,
    budgets: list[Budget],
    classifier: str | None,
) -> str | None:
    """Why a starter must leave `start`'s setup to `start_session`, or None if it may not.

    A starter writes nothing and calls no model: the row is the run's to write (a start
    that fails leaves none), a budget's reservation is the route activity's, and a
    classifier's call is spent and recorded in an activity. `request` is the first step's
    routing question (`first_route_request`), None when there is none.
    """
    if start.carry is not None or start.setup is not None:
        return "not a fresh start"
    if request is None:
        return "the first step asks the router nothing ahead (no agent step)"
    if applicable(budgets, start.tenant, start.team):
        return "a budget applies: its reservation is the route's"
    if request.difficulty is None and classifier is not None:
        return "the first step's difficulty is left to a classifier call"
    if json_size(start.input) > OPENING_INPUT_BYTES:
        return "the input is too large to ride in the first call"
    return None


async def prepare_start(runtime: Runtime, start: SessionStartInput) -> SessionStartInput:
    """`start` with its setup resolved here, when this starter may (`ahead_refusal`).

    The setup is `start_session`'s, first route included; nothing is written (the run's
    first activity writes the row). Otherwise `start` unchanged, and the run resolves
    itself: a plan this runtime cannot resolve, a first route the router refuses, or a
    store that cannot be read, is left to `start_session`, which fails, asks or retries
    as it always has.
    """
    if start.carry is not None or start.setup is not None:
        return start
    try:
        resolved = resolve(runtime, start)
    except RESOLVE_ERRORS:
        return start
    request = first_route_request(start, {spec.name: spec for spec in resolved.specs})
    refusal = ahead_refusal(
        start,
        request,
        budgets=list(runtime.models.budgets),
        classifier=runtime.models.routing.complexity.classifier,
    )
    if refusal is not None:
        return start
    # No run yet: the decision names the session's workflow, and no run.
    ctx = CallContext(
        session_id=start.session_id, workflow_id=workflow_id_for(start.session_id), run_id=""
    )
    try:
        first = await route_ahead(RoutingActivities(runtime), request, ctx)
    except StoreError:
        # The router's figures could not be read: `start_session` asks again, with retries.
        return start
    if first is None:
        return start
    return start.model_copy(update={"setup": setup_of(runtime, resolved, first)})
