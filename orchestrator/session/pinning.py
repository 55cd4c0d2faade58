"""Workflow-side helpers of routing: what to ask the router, and what a re-run may reuse.

Pure and deterministic, so the workflow may call them; the decision itself is made by the
`orchestrator.route` activity, which reads live metrics.
"""

from __future__ import annotations

import json

from temporalio.exceptions import ActivityError, ApplicationError

from orchestrator.plans.models import AgentStep
from orchestrator.routing.policy import Difficulty
from orchestrator.routing.types import RouteRequest
from orchestrator.session.types import Boundary, SessionStartInput
from orchestrator.types import JsonObject

__all__ = ["UNAVAILABLE_ERRORS", "activity_cause", "reuse_key", "route_request", "unavailable"]

UNAVAILABLE_ERRORS = frozenset(
    {
        "ProviderHTTPError",
        "ProviderTimeoutError",
        "ProviderConnectionError",
        "ProviderReportedError",
        "DeploymentUnavailable",
    }
)
"""Error types of a model call that mean the deployment is down, not that the request is
wrong: after its retries, such a failure forces a failover to another deployment."""

_CHARS_PER_TOKEN = 4


def route_request(
    start: SessionStartInput,
    step: AgentStep,
    *,
    name: str | None,
    boundary: Boundary,
    current: str | None,
    tokens_so_far: int,
    prompt_chars: int,
    exclude: dict[str, str],
) -> RouteRequest:
    """The router's question for an agent step at a boundary."""
    needs = list(dict.fromkeys([*(["tools"] if step.skills else []), *step.needs]))
    return RouteRequest(
        session_id=start.session_id,
        tenant=start.tenant,
        team=start.team,
        policy=start.plan.policy,
        name=name,
        step_id=step.id,
        task_type=step.task_type,
        tags=list(step.tags),
        data_class=step.data_class,
        difficulty=Difficulty(step.difficulty),
        needs=needs,
        region=step.region,
        tokens_so_far=tokens_so_far,
        # A tool loop grows the conversation; plan for a few rounds of it.
        expected_input_tokens=max(2_000, 3 * prompt_chars // _CHARS_PER_TOKEN),
        headers=dict(start.headers),
        current=current,
        boundary=boundary.value,
        exclude=dict(exclude),
    )


def activity_cause(exc: ActivityError | ApplicationError) -> tuple[str, str]:
    """The failure's error type and message (a local activity's error may come unwrapped)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message
    return type(cause).__name__, str(cause)


def unavailable(exc: ActivityError) -> bool:
    """Whether a failed model call means its deployment is unavailable."""
    return activity_cause(exc)[0] in UNAVAILABLE_ERRORS


def reuse_key(skill: str, arguments: JsonObject) -> str:
    """Identity of a tool call for reuse across a step's re-runs: skill and arguments."""
    return f"{skill}|{json.dumps(arguments, sort_keys=True)}"
