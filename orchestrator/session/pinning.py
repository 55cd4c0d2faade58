"""Routing and pinning decisions: which boundary, what to ask the router, what fails over.

Pure and deterministic, so the workflow may call them and tests need no worker
(tests/session/test_decisions_pure.py); the routing decision itself is made by the
`orchestrator.route` activity, which reads live metrics, and `ModelPins` applies them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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
from orchestrator.providers.messages import ChatMessage, ToolDefinition
from orchestrator.routing.policy import Difficulty
from orchestrator.routing.types import RouteRequest
from orchestrator.session.prompt_cache import (
    expected_calls,
    prompt_head,
    session_prefix_tokens,
    steps_left,
)
from orchestrator.session.templating import TemplateError, render_text
from orchestrator.session.types import (
    Boundary,
    ModelSwitchRequest,
    SessionStartInput,
    StepState,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "UNAVAILABLE_ERRORS",
    "RouteTarget",
    "agent_opening",
    "answers",
    "boundary_for",
    "carries_over",
    "failover_prompt_chars",
    "failure_message",
    "first_route_request",
    "named_pin",
    "reuse_key",
    "route_request",
    "route_target",
    "tool_definitions",
    "unavailable",
]

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
    expected_calls: float = 1.0,
    warm_input_tokens: int = 0,
    horizon_steps: float = 1.0,
    session_prefix_tokens: int = 0,
) -> RouteRequest:
    """The router's question for an agent step at a boundary.

    `prompt_chars` is the first call's prompt; the tool loop after it is priced by
    `expected_calls`, `warm_input_tokens` of the prompt are warm on `current`, and the pin
    is priced over the session's `horizon_steps` left, each re-reading
    `session_prefix_tokens` from its cache (`orchestrator.session.prompt_cache`).
    """
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
        expected_input_tokens=max(2_000, prompt_chars // _CHARS_PER_TOKEN),
        expected_calls=expected_calls,
        warm_input_tokens=warm_input_tokens,
        horizon_steps=horizon_steps,
        session_prefix_tokens=session_prefix_tokens,
        headers=dict(start.headers),
        current=current,
        boundary=boundary.value,
        exclude=dict(exclude),
    )


def agent_opening(
    plan_name: str,
    step: AgentStep,
    specs: list[SkillSpec],
    inputs: JsonObject,
    outputs: dict[str, JsonValue],
) -> tuple[list[ToolDefinition], list[ChatMessage]]:
    """An agent step's tools (its skills' `specs`, in order) and its opening messages.

    Raises:
        TemplateError: the goal or instructions name an input or output the run lacks.
    """
    tools = tool_definitions(specs)
    system = f"Plan: {plan_name}\nStep: {step.id}"
    if step.instructions:
        system += "\n\n" + render_text(step.instructions, inputs, outputs)
    user = render_text(step.goal, inputs, outputs)
    if inputs:
        user += "\n\nSession input:\n" + json.dumps(inputs, sort_keys=True)
    return tools, [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=user),
    ]


def tool_definitions(specs: list[SkillSpec]) -> list[ToolDefinition]:
    """The tools an agent step offers the model: one per skill spec, in order."""
    return [
        ToolDefinition(
            name=spec.tool_name, description=spec.description, parameters=spec.input_schema
        )
        for spec in specs
    ]


def first_route_request(
    start: SessionStartInput, skills: dict[str, SkillSpec]
) -> RouteRequest | None:
    """What a fresh session's first step asks the router at its start, if it is an agent step.

    The question `ModelPins.route` asks there (no pin yet, no switch, nothing spent, no
    outputs), from the session's resolved `skills` by name; `start_session` asks it ahead
    of the workflow, which takes the answer only if it asks the same (`FirstRoute`). None
    when the first step is no agent step, or its opening cannot be built (the workflow
    then fails the step as it would have).
    """
    step = start.plan.steps[0] if start.plan.steps else None
    if start.carry is not None or not isinstance(step, AgentStep):
        return None
    names = [ref.partition("@")[0].strip() for ref in step.skills]
    if any(name not in skills for name in names):
        return None
    try:
        tools, messages = agent_opening(
            start.plan.name, step, [skills[name] for name in names], start.input, {}
        )
    except TemplateError:
        return None
    target = route_target(
        step, start.plan.model, failover_name=None, failed=False, escalate=None, switch=None
    )
    steps = [StepState(id=s.id, type=s.type) for s in start.plan.steps]
    head = prompt_head(tools, messages)
    return route_request(
        start,
        step,
        name=target.name,
        boundary=Boundary.SESSION_START,
        current=None,
        tokens_so_far=0,
        prompt_chars=head.chars,
        exclude={},
        expected_calls=expected_calls(start.plan, steps, step),
        horizon_steps=steps_left(start.plan, step),
        session_prefix_tokens=session_prefix_tokens(start.plan, step, head),
    )


def answers(ahead: RouteRequest, request: RouteRequest) -> bool:
    """Whether the decision `start_session` took for `ahead` answers the workflow's `request`.

    The same question does. So does one recorded before the session's steps left were told
    to the router (`horizon_steps` and `session_prefix_tokens` at their defaults) that
    differs in nothing else: such a session took that decision when it ran, and a replay
    (or its first workflow task after an upgrade) must take it again rather than ask the
    route activity, which its history does not hold (`tests/histories/refund_gen1.json`
    and `refund_gen2.json` hold such setups: strict equality fails their replay).
    """
    if ahead == request:
        return True
    untold = request.model_copy(update={"horizon_steps": 1.0, "session_prefix_tokens": 0})
    return (ahead.horizon_steps, ahead.session_prefix_tokens) == (1.0, 0) and ahead == untold


def failure_message(exc: ActivityError | ApplicationError) -> str:
    """The failure's message (a local activity's error may come unwrapped)."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


def unavailable(exc: BaseException) -> bool:
    """Whether a failed model call means its deployment is unavailable."""
    return isinstance(from_failure(exc), UNAVAILABLE_ERRORS)


def reuse_key(skill: str, arguments: JsonObject) -> str:
    """Identity of a tool call for reuse across a step's re-runs: skill and arguments."""
    return f"{skill}|{json.dumps(arguments, sort_keys=True)}"


def boundary_for(
    *,
    failover: bool,
    escalation: bool,
    first_pin: bool,
    after_approval: bool,
    continued_unrouted: bool,
) -> Boundary:
    """Which boundary an agent step's routing happens at (recorded with the pin).

    A forced failover and a cascade's escalation name themselves; otherwise the session's
    first pin is its start, the first after an approval step follows it, and the first of
    a run that continued as new is that boundary; any other is a step change.
    """
    if failover:
        return Boundary.FORCED_FAILOVER
    if escalation:
        return Boundary.ESCALATION
    if first_pin:
        return Boundary.SESSION_START
    if after_approval:
        return Boundary.AFTER_APPROVAL
    if continued_unrouted:
        return Boundary.CONTINUE_AS_NEW
    return Boundary.STEP_CHANGE


@dataclass(frozen=True)
class RouteTarget:
    """What an agent step asks the router for: a model name (or any), and why."""

    name: str | None
    why: str
    takes_switch: bool = False
    """The step uses the pending switch request, which is then spent."""


def route_target(
    step: AgentStep,
    plan_model: str | None,
    *,
    failover_name: str | None,
    failed: bool,
    escalate: str | None,
    switch: ModelSwitchRequest | None,
) -> RouteTarget:
    """The name to route for, in order of precedence.

    A failover asks again for what the step asked before (`failover_name`), under the same
    constraints; a cascade asks for the step's `escalate_to`; then a pending switch
    request, the step's model, the plan's default, or any model.
    """
    if failed:
        return RouteTarget(failover_name, "failover within the same constraints")
    if escalate:
        return RouteTarget(step.escalate_to, f"cascade: {escalate}")
    if switch is not None:
        return RouteTarget(switch.model, f"switch requested: {switch.reason}", takes_switch=True)
    if step.model:
        return RouteTarget(step.model, f"{step.model} named by the step")
    why = f"{plan_model} is the plan default" if plan_model else "any model"
    return RouteTarget(plan_model, why)


def named_pin(
    step: AgentStep,
    plan_model: str | None,
    default_model: str,
    switch: ModelSwitchRequest | None,
) -> tuple[str, str]:
    """The model and reason of a pin without the router (sessions from before routing-v1)."""
    if switch is not None:
        return switch.model, f"switch requested: {switch.reason}"
    if step.model:
        return step.model, "named by the step"
    if plan_model:
        return plan_model, "plan default"
    return default_model, "registry default"


def carries_over(failover: str) -> bool:
    """Whether a failover carries the conversation to the next deployment mid-loop.

    The router's policy says; by default (`restart_step`) the step rolls back to its start,
    a safe boundary, and re-runs with the failed attempt's tool results reused.
    """
    return failover == "carry_over"


def failover_prompt_chars(carry_over: bool, conversation_chars: int, start_chars: int) -> int:
    """How much text the next deployment must hold: a carried conversation, or the start."""
    return max(conversation_chars if carry_over else 0, start_chars)
