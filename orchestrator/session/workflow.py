"""The generic agent-session workflow: runs any plan, durably and deterministically.

Decisions live here; every piece of I/O (model calls, skill calls, store writes) is an
activity. The model is chosen only at safe boundaries (session start, a new step) and
pinned for the step's whole tool loop; a switch request waits for the next boundary.
A gated skill waits here, durably, for a person's decision bound to the exact call.

This module holds the workflow's entry points (run, query, updates) and the step
dispatcher; the parts it is built from each live in their own module: `core` (shared
state, activities, events), `carry` (continue-as-new), `approval_gate`, `skill_calls`
and `agent_loop` (routing and the pinned tool loop).
"""

from __future__ import annotations

from temporalio import workflow

from orchestrator.exceptions import SessionFailed, UnknownModelError, to_failure
from orchestrator.plans.models import AnyStep, PlanStep
from orchestrator.plans.registry import StepError
from orchestrator.plans.schemas import OutputError, schema_faults
from orchestrator.session import names, patches
from orchestrator.session.constructs import ConstructError, base_id
from orchestrator.session.core import StepFailed
from orchestrator.session.fanout import FanOut
from orchestrator.session.payloads import MAX_RESULT_BYTES, fit_outputs, recorded_output
from orchestrator.session.step_types import Steps, kind_of
from orchestrator.session.templating import TemplateError
from orchestrator.session.types import (
    ApprovalDecision,
    ApprovalDecisionResult,
    ApprovalDelegation,
    ApprovalDelegationResult,
    ModelSwitchRequest,
    ModelSwitchResult,
    PendingApproval,
    SessionResult,
    SessionSetup,
    SessionStartInput,
    SessionState,
    StepState,
    WorkflowEvent,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonValue

__all__ = ["AgentSessionWorkflow"]


@workflow.defn(name=names.WORKFLOW_NAME)
class AgentSessionWorkflow(FanOut):
    """Runs one plan for one session."""

    @workflow.init
    def __init__(self, start: SessionStartInput) -> None:
        self._start = start
        self._state = SessionState(
            session_id=start.session_id,
            plan_name=start.plan.name,
            plan_version=start.plan.version,
            steps=[StepState(id=s.id, type=s.type) for s in start.plan.steps],
        )
        self._skills: dict[str, SkillSpec] = {}
        self._tool_to_skill: dict[str, str] = {}
        self._models: set[str] = set()
        self._default_model = ""
        self._pending: dict[str, PendingApproval] = {}
        self._decisions: dict[str, ApprovalDecision] = {}
        self._switch: ModelSwitchRequest | None = None
        self._outputs: dict[str, JsonValue] = {}
        self._events: list[WorkflowEvent] = []
        self._batched = False
        """Bookkeeping-batch-v1: pending events ride in the next model call or the finish.
        False when replaying a history recorded before it."""
        self._routing = False
        """Routing-v1: the router chooses at boundaries, and a dead deployment fails over.
        False when replaying a history recorded before it, which took the old path."""
        self._after_approval = False
        self._route_name: str | None = None
        self._routed = False
        self._failover = "restart_step"
        """Whether this run has asked the router yet (its first ask after a continue-as-new
        is that boundary)."""
        self._attempt = 0
        self._reuse: dict[str, str] = {}
        self._setup: SessionSetup | None = None
        self._resumed_at: str | None = None
        self._runs = 1
        self._task_type: str | None = None
        if start.carry is not None:
            self._resume(start.carry)

    # ---- queries, updates -------------------------------------------------------------

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> SessionState:
        """The live state: current step, pinned model, pending approvals, cost so far."""
        return self._snapshot()

    @workflow.update(name=names.DECIDE_APPROVAL)
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalDecisionResult:
        """Take a person's decision on a pending approval."""
        return self._take_decision(decision)

    @decide_approval.validator
    def _check_decision(self, decision: ApprovalDecision) -> None:
        self._validate_decision(decision)

    @workflow.update(name=names.DELEGATE_APPROVAL)
    async def delegate_approval(self, request: ApprovalDelegation) -> ApprovalDelegationResult:
        """Hand a pending approval to another member of its group."""
        return self._delegate(request)

    @delegate_approval.validator
    def _check_delegation(self, request: ApprovalDelegation) -> None:
        self._validate_delegation(request)

    @workflow.update(name=names.REQUEST_MODEL_SWITCH)
    async def request_model_switch(self, request: ModelSwitchRequest) -> ModelSwitchResult:
        """Switch model at the next safe boundary (never inside a running step)."""
        self._switch = request
        return ModelSwitchResult(model=request.model, effective="next_step")

    @request_model_switch.validator
    def _check_switch(self, request: ModelSwitchRequest) -> None:
        if self._models and request.model not in self._models:
            known = ", ".join(sorted(self._models))
            raise to_failure(UnknownModelError(f"unknown model {request.model!r} (known: {known})"))

    # ---- run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: SessionStartInput) -> SessionResult:
        """Resolve the session, run each step in order, and close the session record."""
        carry = start.carry
        if carry is None:
            setup = await self._activity(
                names.START_SESSION, start, SessionSetup, self._start.options.bookkeeping
            )
        else:
            setup = carry.setup
        self._setup = setup
        self._skills = {spec.name: spec for spec in setup.skills}
        self._tool_to_skill = {spec.tool_name: spec.name for spec in setup.skills}
        self._models = set(setup.models)
        self._default_model = setup.default_model
        self._batched = workflow.patched(patches.BOOKKEEPING_BATCH)
        # A run on bookkeeping-batch-v1 takes every earlier patch's new path without asking,
        # sparing each its marker and search-attribute upsert (see `patches`).
        self._routing = self._batched or workflow.patched(patches.ROUTING)
        if not self._batched:
            workflow.deprecate_patch(patches.CONTINUE_AS_NEW)
        first = carry.next_step if carry is not None else 0
        try:
            for index, step in enumerate(start.plan.steps[first:], start=first):
                await self._run_step(index, step)
                if index + 1 < len(start.plan.steps):
                    await self._continue_if_long(index + 1, f"step:{index + 1}")
            final = self._outputs.get(start.plan.steps[-1].id)
            if start.plan.output_schema is not None:
                faults = schema_faults(start.plan.output_schema, final)
                if faults:
                    raise StepFailed(
                        "the final output breaks the plan's output_schema: " + "; ".join(faults)
                    )
        except StepFailed as exc:
            self._state.status = SessionStatus.FAILED
            self._state.error = str(exc)
            await self._finish(SessionStatus.FAILED, error=str(exc))
            raise to_failure(SessionFailed(str(exc))) from None
        self._state.status = SessionStatus.COMPLETED
        self._state.current_step = None
        await self._finish(SessionStatus.COMPLETED, output=final)
        # The final output is in the result twice; both must fit Temporal's payload limit.
        outputs = fit_outputs(self._outputs, MAX_RESULT_BYTES // 2)
        return SessionResult(
            session_id=start.session_id,
            status=SessionStatus.COMPLETED,
            outputs=outputs,
            final_output=outputs.get(start.plan.steps[-1].id),
            input_tokens=self._state.input_tokens,
            output_tokens=self._state.output_tokens,
            cost_usd=self._state.cost_usd,
            model_timeline=list(self._state.model_timeline),
        )

    async def _run_step(self, index: int, step: PlanStep) -> None:
        await self._execute(step, self._state.steps[index])

    def step_host(self) -> Steps:
        """The view of this session a registered step type runs with."""
        return Steps(inputs=self._start.input, outputs=self._outputs, run_inner=self._run_inner)

    async def _run_inner(self, step: AnyStep) -> JsonValue:
        """Run a step held by a construct; it shows in the state query once it starts."""
        state = StepState(id=step.id, type=step.type)
        self._state.steps.append(state)
        await self._execute(step, state)
        return self._outputs[step.id]

    async def _execute(self, step: AnyStep, state: StepState) -> None:
        self._state.current_step = step.id
        state.status = "running"
        self._event(EventKind.STEP_STARTED, step.id, payload={"type": step.type})
        kind = kind_of(step)
        # Outcomes (bad tool arguments, rejected calls, a broken schema) are credited to
        # the pinned model only while an agent step runs.
        self._task_type = kind.task_type(step)
        try:
            output = await kind.run(self, step, state)
        except (StepFailed, TemplateError, ConstructError, OutputError, StepError) as exc:
            state.status, state.error = "failed", str(exc)
            self._event(
                EventKind.STEP_FAILED,
                step.id,
                payload={"error": str(exc)},
                # The model's answer broke the step's schema: an outcome of its deployment.
                credit=self._credit() if isinstance(exc, OutputError) else None,
            )
            await self._flush()
            raise StepFailed(f"step {step.id!r} failed: {exc}") from None
        state.status, state.output = "completed", output
        self._outputs[step.id] = output
        # A loop's later iterations run as `id#n`; the written id names the latest output.
        self._outputs[base_id(step.id)] = output
        # The output rides in the event for `sessions show`. An activity's input is not
        # compared on replay, so older histories replay unchanged without a patch.
        self._event(
            EventKind.STEP_COMPLETED,
            step.id,
            payload={"output": recorded_output(step.id, output)},
        )
        if self._batched and step is self._start.plan.steps[-1]:
            return  # the session's finish writes them (`bookkeeping-batch-v1`)
        await self._flush()
