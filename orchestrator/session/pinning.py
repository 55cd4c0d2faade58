"""Workflow-side helpers of routing: what to ask the router, and what a re-run may reuse.

Pure and deterministic, so the workflow may call them; the decision itself is made by the
`orchestrator.route` activity, which reads live metrics.
"""

from __future__ import annotations

import json

from temporalio.exceptions import ActivityError, ApplicationError

from orchestrator.exceptions import (
    DeploymentUnavailable,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderReportedError,
    ProviderTimeoutError,
    from_failure,
)
from orchestrator.plans.models import AgentStep
from orchestrator.routing.policy import Difficulty
from orchestrator.routing.types import RouteRequest
from orchestrator.session.types import Boundary, SessionStartInput
from orchestrator.types import JsonObject

__all__ = ["UNAVAILABLE_ERRORS", "failure_message", "reuse_key", "route_request", "unavailable"]

UNAVAILABLE_ERRORS = (
    ProviderHTTPError,
    ProviderTimeoutError,
    ProviderConnectionError,
    ProviderReportedError,
    DeploymentUnavailable,
)
"""Errors of a model call that mean the deployment is down, not that the request is wrong:
after its retries, such a failure forces a failover to another deployment. (A provider
error that retrying cannot fix crosses as `PermanentError` and fails the step instead.)"""

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
    declared = step.difficulty is not None
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
        difficulty=Difficulty(step.difficulty) if step.difficulty is not None else None,
        # Only an undeclared difficulty needs the text: the router estimates it from this.
        prompt="" if declared else "\n".join(filter(None, [step.goal, step.instructions])),
        tools=len(step.skills),
        output_schema=step.output_schema is not None,
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


def failure_message(exc: ActivityError | ApplicationError) -> str:
    """The failure's message (a local activity's error may come unwrapped)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


def unavailable(exc: ActivityError) -> bool:
    """Whether a failed model call means its deployment is unavailable."""
    return isinstance(from_failure(exc), UNAVAILABLE_ERRORS)


def reuse_key(skill: str, arguments: JsonObject) -> str:
    """Identity of a tool call for reuse across a step's re-runs: skill and arguments."""
    return f"{skill}|{json.dumps(arguments, sort_keys=True)}"
