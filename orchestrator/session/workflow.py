"""The generic agent-session workflow: runs any plan, durably and deterministically.

Decisions live here; every piece of I/O (model calls, skill calls, store writes) is an
activity. The model is chosen only at safe boundaries (session start, a new step) and
pinned for the step's whole tool loop; a switch request waits for the next boundary.
A gated skill waits here, durably, for a person's decision bound to the exact call.

This module holds the workflow's entry points (run, query, updates) and the step
dispatcher; it is composed of parts (`parts.SessionParts`), each in its own module:
`core` (the runtime: the one state model, activities, events), `carry`
(continue-as-new), `approval_gate`, `skill_calls`, `model_pins` (routing and pinning),
`agent_loop` (the pinned tool loop) and `fanout` (ensembles, sub-plans). Which part runs
a step is the step type registry's answer (`step_types`), not an `isinstance` chain.
"""

from __future__ import annotations

from temporalio import workflow

from orchestrator.exceptions import SessionFailed, UnknownModelError, to_failure
from orchestrator.plans.models import AnyStep
from orchestrator.plans.registry import StepError
from orchestrator.plans.schemas import OutputError, schema_faults
from orchestrator.session import names, patches
from orchestrator.session.constructs import ConstructError, base_id
from orchestrator.session.core import SessionRuntime, StepFailed
from orchestrator.session.last_call import step_completed_payload
from orchestrator.session.parts import SessionParts
from orchestrator.session.payloads import MAX_RESULT_BYTES, fit_outputs
from orchestrator.session.step_types import kind_of
from orchestrator.session.templating import TemplateError
from orchestrator.session.types import (
    ApprovalDecision,
    ApprovalDecisionResult,
    ApprovalDelegation,
    ApprovalDelegationResult,
    ModelSwitchRequest,
    ModelSwitchResult,
    SessionOpening,
    SessionResult,
    SessionSetup,
    SessionStartInput,
    SessionState,
    StepState,
)
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonValue

__all__ = ["AgentSessionWorkflow"]


@workflow.defn(name=names.WORKFLOW_NAME)
class AgentSessionWorkflow:
    """Runs one plan for one session."""

    @workflow.init
    def __init__(self, start: SessionStartInput) -> None:
        self._rt = SessionRuntime(start)
        self._parts = SessionParts.build(self._rt, self._run_inner)

    # ---- queries, updates -------------------------------------------------------------

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> SessionState:
        """The live state: current step, pinned model, pending approvals, cost so far."""
        return self._rt.snapshot()

    @workflow.update(name=names.DECIDE_APPROVAL)
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalDecisionResult:
        """Take a person's decision on a pending approval."""
        return self._parts.gate.take_decision(decision)

    @decide_approval.validator
    def _check_decision(self, decision: ApprovalDecision) -> None:
        self._parts.gate.validate_decision(decision)

    @workflow.update(name=names.DELEGATE_APPROVAL)
    async def delegate_approval(self, request: ApprovalDelegation) -> ApprovalDelegationResult:
        """Hand a pending approval to another member of its group."""
        return self._parts.gate.delegate(request)

    @delegate_approval.validator
    def _check_delegation(self, request: ApprovalDelegation) -> None:
        self._parts.gate.validate_delegation(request)

    @workflow.update(name=names.REQUEST_MODEL_SWITCH)
    async def request_model_switch(self, request: ModelSwitchRequest) -> ModelSwitchResult:
        """Switch model at the next safe boundary (never inside a running step)."""
        self._rt.memory.switch = request
        return ModelSwitchResult(model=request.model, effective="next_step")

    @request_model_switch.validator
    def _check_switch(self, request: ModelSwitchRequest) -> None:
        models = self._rt.models
        if models and request.model not in models:
            known = ", ".join(sorted(models))
            raise to_failure(UnknownModelError(f"unknown model {request.model!r} (known: {known})"))

    # ---- run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: SessionStartInput) -> SessionResult:
        """Resolve the session, run each step in order, and close the session record."""
        rt, continuation = self._rt, self._parts.continuation
        carry = start.carry
        setup = carry.setup if carry is not None else None
        ahead = start.setup if carry is None else None
        if ahead is not None and ahead.generation >= patches.OPENING_GENERATION:
            # Its starter resolved it: the first activity writes the row and first event.
            setup = ahead
            rt.opening = SessionOpening.of(start, ahead.skills)
        elif setup is None:
            # A first run resolves its session; a continued one was handed the resolution.
            setup = await rt.activity(
                names.START_SESSION, start, SessionSetup, start.options.bookkeeping
            )
        rt.take_setup(setup)
        # A session started on this generation takes every patch's new path without asking,
        # and a run on bookkeeping-batch-v1 every earlier patch's: each ask records a
        # marker and a search-attribute upsert (see `patches`).
        rt.batched = setup.generation >= patches.SETUP_GENERATION or workflow.patched(
            patches.BOOKKEEPING_BATCH
        )
        rt.routing = rt.batched or workflow.patched(patches.ROUTING)
        if not rt.batched:
            workflow.deprecate_patch(patches.CONTINUE_AS_NEW)
        first = carry.next_step if carry is not None else 0
        state, outputs = rt.state, rt.outputs
        try:
            for index, step in enumerate(start.plan.steps[first:], start=first):
                await self._execute(step, state.steps[index])
                if index + 1 < len(start.plan.steps):
                    await continuation.continue_if_long(index + 1, f"step:{index + 1}")
            final = outputs.get(start.plan.steps[-1].id)
            if start.plan.output_schema is not None:
                faults = schema_faults(start.plan.output_schema, final)
                if faults:
                    raise StepFailed(
                        "the final output breaks the plan's output_schema: " + "; ".join(faults)
                    )
        except StepFailed as exc:
            state.status = SessionStatus.FAILED
            state.error = str(exc)
            await rt.finish(SessionStatus.FAILED, error=str(exc))
            raise to_failure(SessionFailed(str(exc))) from None
        state.status = SessionStatus.COMPLETED
        state.current_step = None
        await rt.finish(SessionStatus.COMPLETED, output=final)
        # The final output is in the result twice; both must fit Temporal's payload limit.
        fitted = fit_outputs(outputs, MAX_RESULT_BYTES // 2)
        return SessionResult(
            session_id=start.session_id,
            status=SessionStatus.COMPLETED,
            outputs=fitted,
            final_output=fitted.get(start.plan.steps[-1].id),
            input_tokens=state.input_tokens,
            output_tokens=state.output_tokens,
            cost_usd=state.cost_usd,
            model_timeline=list(state.model_timeline),
        )

    async def _run_inner(self, step: AnyStep) -> JsonValue:
        """Run a step held by a construct; it shows in the state query once it starts."""
        state = StepState(id=step.id, type=step.type)
        self._rt.state.steps.append(state)
        await self._execute(step, state)
        return self._rt.outputs[step.id]

    async def _execute(self, step: AnyStep, state: StepState) -> None:
        rt = self._rt
        rt.state.current_step = step.id
        state.status = "running"
        rt.event(EventKind.STEP_STARTED, step.id, payload={"type": step.type})
        kind = kind_of(step)
        # Outcomes (bad tool arguments, rejected calls, a broken schema) are credited to
        # the pinned model only while an agent step runs.
        rt.task_type = kind.task_type(step)
        try:
            output = await kind.run(self._parts, step, state)
        except (StepFailed, TemplateError, ConstructError, OutputError, StepError) as exc:
            state.status, state.error = "failed", str(exc)
            rt.event(
                EventKind.STEP_FAILED,
                step.id,
                payload={"error": str(exc)},
                # The model's answer broke the step's schema: an outcome of its deployment.
                credit=rt.credit() if isinstance(exc, OutputError) else None,
            )
            await rt.flush()
            raise StepFailed(f"step {step.id!r} failed: {exc}") from None
        state.status, state.output = "completed", output
        rt.outputs[step.id] = output
        # A loop's later iterations run as `id#n`; the written id names the latest output.
        rt.outputs[base_id(step.id)] = output
        # The output rides in the event for `sessions show`. An activity's input is not
        # compared on replay, so older histories replay unchanged without a patch.
        rt.event(EventKind.STEP_COMPLETED, step.id, payload=step_completed_payload(step.id, output))
        if rt.batched and step is rt.start.plan.steps[-1]:
            return  # the session's finish writes them (`bookkeeping-batch-v1`)
        await rt.flush()
