"""Every payload in and out of the session workflow and its activities.

One pydantic model per direction, so a field can be added later without breaking the
histories of sessions that are still running. The approval payloads live in
`orchestrator.approvals.types` (the approvals domain never imports the session) and are
re-exported here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from orchestrator.approvals.types import (
    ApprovalDecision,
    ApprovalDecisionResult,
    ApprovalDelegation,
    ApprovalDelegationResult,
    ApprovalPolicy,
    PendingApproval,
)
from orchestrator.plans.models import Plan
from orchestrator.providers.messages import ChatMessage, ModelResponse, ToolDefinition
from orchestrator.routing.complexity import DifficultyEstimate
from orchestrator.routing.types import RouteRequest, RoutingDecision
from orchestrator.session.prompt_cache import PromptHead
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject, JsonValue

__all__ = [
    "Ack",
    "ActivityOptions",
    "ApprovalDecision",
    "ApprovalDecisionInput",
    "ApprovalDecisionResult",
    "ApprovalDelegation",
    "ApprovalDelegationResult",
    "ApprovalPolicy",
    "ApprovalRequestInput",
    "Boundary",
    "CallCheck",
    "CallCheckInput",
    "CallContext",
    "CheckAnswerInput",
    "CheckAnswerResult",
    "Credit",
    "EscalationInput",
    "FinishSessionInput",
    "FirstRoute",
    "LoopCarry",
    "ModelCallInput",
    "ModelCallResult",
    "ModelPin",
    "ModelSwitchRequest",
    "ModelSwitchResult",
    "PendingApproval",
    "RecordEventsInput",
    "RouteInput",
    "SessionCarry",
    "SessionClosed",
    "SessionClosing",
    "SessionOpening",
    "SessionOptions",
    "SessionResult",
    "SessionSetup",
    "SessionStartInput",
    "SessionState",
    "SettleBudgetInput",
    "SkillCallInput",
    "SkillCallResult",
    "StepState",
    "WorkflowEvent",
]


class Ack(BaseModel):
    """The empty answer of activities that only record something."""


class ActivityOptions(BaseModel):
    """How one kind of activity is scheduled. Copy with `model_copy(update=...)` to change."""

    local: bool = False
    """Run as a local activity: no task-queue round trip, recorded as a marker. Faster per
    call; a crash re-runs it, which idempotency keys make safe."""
    start_to_close: timedelta = timedelta(seconds=120)
    """Longest one attempt may run."""
    heartbeat: timedelta | None = None
    """Declare a lost worker after this long without a heartbeat (regular activities only)."""
    max_attempts: int = 5
    """Attempts before the error reaches the workflow; 0 means unlimited."""
    initial_retry: timedelta = timedelta(milliseconds=200)
    """First retry delay; it doubles up to `max_retry`."""
    max_retry: timedelta = timedelta(seconds=10)


class SessionOptions(BaseModel):
    """Scheduling of each activity kind; carried in the workflow input so replays agree."""

    model_call: ActivityOptions = Field(
        default_factory=lambda: ActivityOptions(heartbeat=timedelta(seconds=10))
    )
    skill_call: ActivityOptions = Field(
        default_factory=lambda: ActivityOptions(heartbeat=timedelta(seconds=10))
    )
    bookkeeping: ActivityOptions = Field(
        default_factory=lambda: ActivityOptions(local=True, start_to_close=timedelta(seconds=30))
    )
    """Store writes and set-up: short, idempotent, never a side effect outside the store."""
    continue_as_new_after: int | None = Field(default=None, ge=1)
    """Continue as new at the next safe point once the run's history holds this many
    events; empty: when Temporal suggests it (the history is getting large)."""


class SessionStartInput(BaseModel):
    """What starts a session: the plan (as it was when the run started) and its input."""

    session_id: str
    plan: Plan
    input: JsonObject = Field(default_factory=dict)
    requested_by: str | None = None
    options: SessionOptions = Field(default_factory=SessionOptions)
    tenant: str = "default"
    """Whose session this is: routing rules, pins and budgets are scoped by it."""
    team: str = "default"
    headers: dict[str, str] = Field(default_factory=dict)
    """Request headers of the client that started the session, for routing rules."""
    carry: SessionCarry | None = None
    """Set when a run continues an earlier one: what it hands over."""
    subplans: dict[str, Plan] = Field(default_factory=dict)
    """Plans this one runs as sub-plans, already resolved (a child session gets its
    parent's, so the whole tree keeps the versions the first session started with);
    those missing are loaded from the project when the session starts."""
    setup: SessionSetup | None = None
    """What `start_session` would resolve, resolved by a starter that holds the runtime
    (`session.resolution.prepare_start`, from `patches.OPENING_GENERATION`): the run
    takes it instead of calling that local activity, and its first activity writes the
    session row (`SessionOpening`). None: the run resolves its session itself (a starter
    without the runtime, a child session, a continued run, every older history)."""


class SessionOpening(BaseModel):
    """The session row and its `session_started` event, as one activity writes them.

    The run's first activity writes them (one transaction, with the events pending before
    it) when the session's setup came in its start input (`SessionStartInput.setup`);
    `start_session` writes them otherwise. Built by `of` on both sides.
    """

    plan_name: str
    plan_version: str
    tenant: str
    team: str
    input: JsonObject = Field(default_factory=dict)
    requested_by: str | None = None
    skills: dict[str, str] = Field(default_factory=dict)
    """The resolved version of each skill, by name."""
    skill_refs: list[str] = Field(default_factory=list)
    """The plan's skill references, as written (`name` or `name@range`)."""
    deprecated: dict[str, str] = Field(default_factory=dict)
    """Why each deprecated version the session resolved is deprecated, by `name@version`."""

    @classmethod
    def of(cls, start: SessionStartInput, skills: list[SkillSpec]) -> SessionOpening:
        """The opening of `start`, with the skills it resolved.

        Pure: the workflow builds it from its start input and setup, `start_session` from
        what it resolved; the same start and skills give the same opening on both sides.
        """
        return cls(
            plan_name=start.plan.name,
            plan_version=start.plan.version,
            tenant=start.tenant,
            team=start.team,
            input=start.input,
            requested_by=start.requested_by,
            skills={spec.name: spec.version for spec in skills},
            skill_refs=start.plan.skill_refs(),
            deprecated={spec.ref: spec.deprecated for spec in skills if spec.deprecated},
        )


class CallContext(BaseModel):
    """Where in which run an activity was called from; names log lines and audit rows."""

    session_id: str
    workflow_id: str
    run_id: str
    step_id: str | None = None


class SessionSetup(BaseModel):
    """What the run resolved at start and keeps for its whole life."""

    skills: list[SkillSpec]
    default_model: str
    models: list[str]
    """Every model name the registry knows, so a switch request can be checked."""
    subplans: dict[str, Plan] = Field(default_factory=dict)
    """Every plan the session may run as a sub-plan (at any depth), by name."""
    call_timeouts: dict[str, float] = Field(default_factory=dict)
    """Each model name's endpoint `timeout_seconds`, from which a model call's activity
    timeout is derived (`call_timeouts.model_call_options`); empty in histories recorded
    before it existed, which keep the session's fixed timeout."""
    generation: int = 0
    """The paths this session takes, as the worker that started it knew them
    (`patches.GENERATION`); 0 in histories recorded before it, which ask their patches.
    Recorded in the history with this result, so a replay takes the same paths."""
    first_route: FirstRoute | None = None
    """The router's answer for the first step, asked by `start_session` in the same local
    activity (one activation and one marker fewer per session). The workflow takes it
    only if the question it would ask is this one, word for word; otherwise, and in
    histories recorded before it, it asks the `orchestrator.route` activity. Taken off
    the setup when the run starts, so continue-as-new never carries it."""


class FirstRoute(BaseModel):
    """A routing decision taken ahead of the workflow, with the question it answers."""

    request: RouteRequest
    decision: RoutingDecision


class Boundary(StrEnum):
    """Points where the model may be chosen again."""

    SESSION_START = "session_start"
    STEP_CHANGE = "step_change"
    AFTER_APPROVAL = "after_approval"
    """The first agent step after an approval step."""
    CONTINUE_AS_NEW = "continue_as_new"
    ESCALATION = "escalation"
    """Cascade: the step's final answer failed its check; the step re-runs on a stronger
    model from its start. Safe: the tool loop had closed."""
    FORCED_FAILOVER = "forced_failover"
    """Not a safe boundary: the pinned model was unavailable; recorded with its cause."""


class ModelPin(BaseModel):
    """One entry of the session's model timeline."""

    step_id: str
    model: str
    boundary: Boundary
    reason: str
    cause: str | None = None
    """For a forced failover: what failed."""


class SessionClosing(BaseModel):
    """What a model call needs to close the session when its answer is final.

    Set only on a call whose final answer ends the session (`patches.LAST_CALL_GENERATION`,
    `session.last_call.ends_session`): the session's totals before this call, to which
    the activity adds the call's own, as the workflow's `SessionRuntime.account` does.
    """

    input_tokens: int
    output_tokens: int
    cost_usd: float
    settle_budget: bool = False
    """Also give back what the session reserved and did not spend, as `finish_session`."""


class SessionClosed(BaseModel):
    """The session's end a model call wrote.

    Its totals (what the row and the closing event hold): the workflow completes with
    them, and without `finish_session`.
    """

    input_tokens: int
    output_tokens: int
    cost_usd: float
    output: JsonValue = None
    """The session's output, set only by a retry that found the session closed by an
    earlier attempt (its answer then is not this attempt's); None: the output is the
    joined answer of the conversation, as the workflow computes it."""


class ModelCallInput(BaseModel):
    """One model call inside a step's tool loop."""

    ctx: CallContext
    round: int
    model: str
    messages: list[ChatMessage]
    tools: list[ToolDefinition]
    attempt: int = 0
    """How many times the step was rolled back to its start after a forced failover."""
    tenant: str = "default"
    team: str = "default"
    max_tokens: int | None = None
    """The step's output limit; empty: the deployment's."""
    temperature: float | None = None
    events: list[WorkflowEvent] = Field(default_factory=list)
    """Workflow events still to write, written before the call (`bookkeeping-batch-v1`)."""
    cache_tenant: str | None = None
    """The tenant to key the response cache by; None: the call does not use the cache
    (a step with `cache: false`, a fan-out's calls)."""
    read_only_tools: list[str] = Field(default_factory=list)
    """Tools whose skills are `read_only`: their results are not writes, for the cache."""
    cache_name: str | None = None
    """The model name the step asked for (an alias), which the cache keys by and opts in;
    None: `model`, the deployment."""
    opening: SessionOpening | None = None
    """The session row and its first event, written before `events` in one transaction:
    set on the first activity of a run that took its setup from its start input."""
    closing: SessionClosing | None = None
    """Set when a final answer from this call ends the session: the activity then closes
    it (`patches.LAST_CALL_GENERATION`)."""


class ModelCallResult(BaseModel):
    """The answer, with what it cost."""

    response: ModelResponse
    cost_usd: float
    deployment: str
    duration_ms: float
    max_tokens: int | None = None
    """The output limit the call was sent with (None: the endpoint's own)."""
    closed: SessionClosed | None = None
    """The call closed the session (its answer was final and its input's `closing` set)."""


class Credit(BaseModel):
    """The deployment an outcome of an agent step is credited to, and for what.

    The router learns from outcomes (see `orchestrator.routing.learning`) per deployment,
    task type and tenant.
    """

    deployment: str
    task_type: str = "default"
    tenant: str = "default"


class SkillCallInput(BaseModel):
    """One skill call; `validate_only` checks arguments without running anything."""

    ctx: CallContext
    call_id: str
    skill: str
    version: str
    arguments: JsonObject
    idempotency_key: str
    approval_id: str | None = None
    validate_only: bool = False
    credit: Credit | None = None
    """For a call a model proposed: the deployment that bad arguments are an outcome of."""
    decision: ApprovalDecisionInput | None = None
    """The approval that let this call run, recorded by the call before anything else
    (`patches.GATE_GENERATION`): no activity of its own."""


class SkillCallResult(BaseModel):
    """A skill's output, or the reason it could not give one.

    Invalid arguments come back as `ok=False, error_kind="invalid_arguments"` rather than as
    an activity failure, so the workflow can hand the reason to the model.
    """

    ok: bool
    output: JsonValue = None
    arguments: JsonObject | None = None
    """The arguments after validation (defaults filled), when they were valid."""
    error: str | None = None
    error_kind: str | None = None
    needs_approval: bool = False
    """From a validate-only call: the contract's approval policy (always, or its CEL
    condition over these arguments) gates this call. Decided by the activity, never the model."""


class CallCheckInput(BaseModel):
    """Check a gated call's arguments; request an approval if its contract gates them."""

    call: SkillCallInput
    events: list[WorkflowEvent] = Field(default_factory=list)
    """Events pending before the check, written with it."""


class CallCheck(BaseModel):
    """A gated call checked: its arguments, and the request stored if it must wait."""

    result: SkillCallResult
    """As a validate-only `call_skill` answers: invalid arguments, or the valid ones."""
    approval: PendingApproval | None = None
    """The request stored (its policy's group and count set); None: the call may run."""
    policy: ApprovalPolicy | None = None
    """The request's policy (timeouts, escalation), with `approval`."""


class EscalationInput(BaseModel):
    """A request that timed out: record it, and tell the next group (None: it expired)."""

    ctx: CallContext
    approval: PendingApproval
    from_group: str | None
    to_group: str | None
    waited_seconds: float


class ApprovalRequestInput(BaseModel):
    """Record a new approval request in the store."""

    ctx: CallContext
    approval: PendingApproval
    events: list[WorkflowEvent] = Field(default_factory=list)
    """Events pending before the request, written with it (`request_approval` only)."""


class ApprovalDecisionInput(BaseModel):
    """Record a decision the workflow accepted."""

    ctx: CallContext
    decision: ApprovalDecision
    credit: Credit | None = None
    """For a tool call a model proposed: the deployment the decision is an outcome of."""
    requested_at: datetime | None = None
    """When the workflow asked for the decision, by its clock (None: not known to this
    run, which continued as new while it waited). The metrics interceptor times the
    decision from it instead of reading the request back from the store."""
    skill: str | None = None
    """The gated call's skill (None for an approval step), for the rejected-call metric."""


class RouteInput(BaseModel):
    """Ask the router at a boundary; at session start, also reserve the session's budget."""

    ctx: CallContext
    request: RouteRequest
    reserve_budget: bool = False
    difficulty_estimate: DifficultyEstimate | None = None
    """The step's estimate from its routing at a safe boundary, used again instead of
    estimating (or asking the classifier) anew: set at a forced failover."""


class CheckAnswerInput(BaseModel):
    """Evaluate a step's `accept` condition over its final answer."""

    ctx: CallContext
    expression: str
    answer: str
    credit: Credit | None = None
    """When set, the result is recorded as an outcome of this deployment."""


class CheckAnswerResult(BaseModel):
    """Whether the answer passed, and why not."""

    ok: bool
    detail: str = ""


class SettleBudgetInput(BaseModel):
    """Give back what a finished session reserved but did not spend."""

    ctx: CallContext


class ModelSwitchRequest(BaseModel):
    """Ask for another model; it takes effect at the next safe boundary, never mid-loop."""

    model: str
    reason: str = "requested"


class ModelSwitchResult(BaseModel):
    """Acknowledges a switch request and says when it takes effect."""

    model: str
    effective: str
    """`next_step`: the session is inside a step and the switch waits for its end."""


class WorkflowEvent(BaseModel):
    """An audit event decided by the workflow, written by the bookkeeping activity."""

    key: str
    kind: EventKind
    step_id: str | None = None
    model: str | None = None
    skill: str | None = None
    payload: JsonObject = Field(default_factory=dict)
    credit: Credit | None = None
    """When set, the event is also an outcome of this deployment (a tool call with bad
    arguments, an answer that broke its schema)."""


class RecordEventsInput(BaseModel):
    """A batch of workflow events, plus an optional session status change."""

    ctx: CallContext
    events: list[WorkflowEvent]
    status: SessionStatus | None = None
    opening: SessionOpening | None = None
    """As `ModelCallInput.opening`: the session row and its first event, before `events`."""


class StepState(BaseModel):
    """Progress of one plan step, as the state query shows it."""

    id: str
    type: str
    status: str = "pending"
    model: str | None = None
    rounds: int = 0
    cost_usd: float = 0.0
    """Spent on this step's model calls, re-runs included (checked by `max_cost_usd`)."""
    output: JsonValue = None
    error: str | None = None


class SessionState(BaseModel):
    """The live state the workflow answers queries with."""

    session_id: str
    plan_name: str
    plan_version: str
    status: SessionStatus = SessionStatus.RUNNING
    current_step: str | None = None
    pinned_model: str | None = None
    in_tool_loop: bool = False
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    steps: list[StepState] = Field(default_factory=list)
    model_timeline: list[ModelPin] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    """Model calls made so far, over all steps (checked by the plan's `limits`)."""
    error: str | None = None


class FinishSessionInput(BaseModel):
    """Close the session record."""

    ctx: CallContext
    status: SessionStatus
    output: JsonValue = None
    error: str | None = None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    events: list[WorkflowEvent] = Field(default_factory=list)
    """Workflow events still to write, written first (`bookkeeping-batch-v1`)."""
    settle_budget: bool = False
    """Also give back what the session reserved and did not spend (`bookkeeping-batch-v1`)."""


class SessionResult(BaseModel):
    """What a finished session returns."""

    session_id: str
    status: SessionStatus
    outputs: dict[str, JsonValue]
    final_output: JsonValue = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_timeline: list[ModelPin] = Field(default_factory=list)


class LoopCarry(BaseModel):
    """An agent step's open tool loop, handed to the next run between two of its rounds.

    Continuing as new here is not a model-switch boundary: the new run goes on with the
    same pinned model, the conversation so far and the next round number (so call ids and
    idempotency keys go on where they stopped), without asking the router again.
    """

    step: int
    """Index of the plan step whose loop is open (only top-level agent steps continue)."""
    round: int
    """The round the new run starts with: every tool call of the rounds before it is done."""
    model: str
    messages: list[ChatMessage]
    attempt: int = 0
    """Forced failovers of this step so far (tool call ids of a re-run are prefixed by it)."""
    reuse: dict[str, str] = Field(default_factory=dict)
    """Tool results a re-run after a forced failover answers instead of running again."""
    failed: dict[str, str] = Field(default_factory=dict)
    """Deployments that failed in this step, with why: a later failover excludes them."""
    escalated: bool = False
    """The step already escalated (cascade), so its answer is not checked again."""
    failover: str = "restart_step"


class SessionCarry(BaseModel):
    """The session workflow's state: what it holds while it runs, and hands to its next run.

    The workflow keeps one instance (`SessionRuntime.memory`); continuing as new hands a
    copy of it, as it stands, to the next run, which takes it over whole. Everything the
    workflow decided so far that the rest of the plan depends on: the skill versions and
    models resolved at start (never resolved again), the live state (pinned model and
    timeline, step results, tokens and cost, pending approvals), decisions already taken,
    and a switch request still waiting for its boundary. What lives for one run only (the
    events not yet written, the patched paths it takes) is not here.
    """

    next_step: int = 0
    """Index of the plan step the new run starts at (set when it continues)."""
    resumed_at: str | None = None
    """The safe point it continued at (`step:N` between steps, `approval:N` at an approval
    step's wait, `loop:N:A:R` between two rounds of a tool loop); the new run does not
    continue again at that same point. None in a session's first run."""
    setup: SessionSetup | None = None
    """What the session resolved at its start (None until `start_session` answers; always
    set in a carry)."""
    state: SessionState
    outputs: dict[str, JsonValue] = Field(default_factory=dict)
    decisions: list[ApprovalDecision] = Field(default_factory=list)
    switch: ModelSwitchRequest | None = None
    route_name: str | None = None
    after_approval: bool = False
    runs: int = 1
    """The run this is (1 for the first); in a carry, the run that handed it on."""
    loop: LoopCarry | None = None
    """Set when the run continued inside an agent step's tool loop (`loop:N:A:R`)."""
    prompt_heads: dict[str, PromptHead] = Field(default_factory=dict)
    """The prompt head each deployment last served in this session, by deployment: what
    its provider's prompt cache may hold (`prompt_cache.warm_input_tokens`)."""
    estimates: dict[str, DifficultyEstimate] = Field(default_factory=dict)
    """The difficulty estimate of each agent step routed at a safe boundary without a
    declared difficulty, by step id; a forced failover of the step reuses it."""


SessionStartInput.model_rebuild()
