"""The generic agent-session workflow: runs any plan, durably and deterministically.

Decisions live here; every piece of I/O (model calls, skill calls, store writes) is an
activity. The model is chosen only at safe boundaries (session start, a new step) and
pinned for the step's whole tool loop; a switch request waits for the next boundary.
A gated skill waits here, durably, for a person's decision bound to the exact call.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from orchestrator.approvals.binding import approval_id_for, binding_hash
from orchestrator.plans.models import (
    AgentStep,
    AnyStep,
    ApprovalStep,
    OnReject,
    PlanStep,
    SkillStep,
)
from orchestrator.plans.schemas import OutputError, structured_output
from orchestrator.providers.messages import ChatMessage, ToolCall, ToolDefinition
from orchestrator.routing.types import RoutingDecision
from orchestrator.session import names
from orchestrator.session.constructs import ConstructError, base_id, run_construct
from orchestrator.session.pinning import activity_cause, reuse_key, route_request, unavailable
from orchestrator.session.templating import TemplateError, render_text, render_value
from orchestrator.session.types import (
    Ack,
    ActivityOptions,
    ApprovalDecision,
    ApprovalDecisionInput,
    ApprovalDecisionResult,
    ApprovalPolicy,
    ApprovalRequestInput,
    Boundary,
    CallContext,
    CheckAnswerInput,
    CheckAnswerResult,
    EscalationInput,
    FinishSessionInput,
    ModelCallInput,
    ModelCallResult,
    ModelPin,
    ModelSwitchRequest,
    ModelSwitchResult,
    PendingApproval,
    RecordEventsInput,
    RouteInput,
    SessionCarry,
    SessionResult,
    SessionSetup,
    SessionStartInput,
    SessionState,
    SettleBudgetInput,
    SkillCallInput,
    SkillCallResult,
    StepState,
    WorkflowEvent,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject, JsonValue

__all__ = ["AgentSessionWorkflow"]

ResultT = TypeVar("ResultT", bound=BaseModel)

NON_RETRYABLE = ["NonRetryable"]

CONTINUE_AS_NEW_PATCH = "continue-as-new-v1"


class _StepFailed(Exception):
    """A step cannot go on; the session ends as failed with this message."""


class _DeploymentDown(Exception):
    """The pinned deployment failed hard inside a tool loop (after its retries)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@workflow.defn(name=names.WORKFLOW_NAME)
class AgentSessionWorkflow:
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
        self._can = False
        """Continue-as-new-v1: the session continues as new at safe points once its
        history is long. False when replaying a history recorded before it."""
        self._resumed_at: str | None = None
        self._runs = 1
        if start.carry is not None:
            self._resume(start.carry)

    # ---- queries, updates -------------------------------------------------------------

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> SessionState:
        """The live state: current step, pinned model, pending approvals, cost so far."""
        return self._state.model_copy(
            update={"pending_approvals": list(self._pending.values())}, deep=True
        )

    @workflow.update(name=names.DECIDE_APPROVAL)
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalDecisionResult:
        """Take a person's decision on a pending approval."""
        prior = self._decisions.get(decision.approval_id)
        if prior is not None:
            return _decision_result(prior, duplicate=True)
        pending = self._pending[decision.approval_id]
        if decision.approve and pending.required > 1:
            if decision.decided_by in pending.approved_by:
                return ApprovalDecisionResult(
                    approval_id=decision.approval_id,
                    status="awaiting_more_approvals",
                    decided_by=decision.decided_by,
                    duplicate=True,
                )
            if len(pending.approved_by) + 1 < pending.required:
                # Two-person rule: the first approval is held until a second person's.
                pending.approved_by.append(decision.decided_by)
                return ApprovalDecisionResult(
                    approval_id=decision.approval_id,
                    status="awaiting_more_approvals",
                    decided_by=decision.decided_by,
                )
            everyone = ", ".join([*pending.approved_by, decision.decided_by])
            decision = decision.model_copy(update={"decided_by": everyone})
        self._decisions[decision.approval_id] = decision
        return _decision_result(decision, duplicate=False)

    @decide_approval.validator
    def _check_decision(self, decision: ApprovalDecision) -> None:
        prior = self._decisions.get(decision.approval_id)
        if prior is not None:
            if prior.approve == decision.approve and prior.binding_hash == decision.binding_hash:
                return
            verb = "approved" if prior.approve else "rejected"
            raise ApplicationError(
                f"approval {decision.approval_id} was already {verb} by {prior.decided_by}",
                type="ApprovalAlreadyDecided",
            )
        pending = self._pending.get(decision.approval_id)
        if pending is None:
            raise ApplicationError(
                f"no pending approval {decision.approval_id} in session {self._state.session_id}",
                type="UnknownApproval",
            )
        if pending.binding_hash != decision.binding_hash:
            raise ApplicationError(
                f"approval {decision.approval_id}: the decision was made on a different action"
                " (binding hash mismatch); nothing was released",
                type="ApprovalBindingMismatch",
            )
        if not decision.approve and not (decision.reason or "").strip():
            raise ApplicationError("a rejection needs a reason", type="ApprovalReasonRequired")
        if decision.arguments is not None and (not decision.approve or pending.kind != "tool_call"):
            raise ApplicationError(
                "arguments can be edited only when approving a skill call",
                type="ApprovalEditNotAllowed",
            )
        if decision.decided_by == self._start.requested_by:
            raise ApplicationError(
                f"{decision.decided_by} started this session and cannot decide its approvals",
                type="ApprovalBySelf",
            )
        if (
            decision.groups is not None
            and pending.group is not None
            and pending.group not in decision.groups
        ):
            raise ApplicationError(
                f"{decision.decided_by} is not in {pending.group}, the group that decides"
                f" approval {decision.approval_id} now",
                type="ApprovalNotInGroup",
            )

    @workflow.update(name=names.REQUEST_MODEL_SWITCH)
    async def request_model_switch(self, request: ModelSwitchRequest) -> ModelSwitchResult:
        """Switch model at the next safe boundary (never inside a running step)."""
        self._switch = request
        return ModelSwitchResult(model=request.model, effective="next_step")

    @request_model_switch.validator
    def _check_switch(self, request: ModelSwitchRequest) -> None:
        if self._models and request.model not in self._models:
            raise ApplicationError(
                f"unknown model {request.model!r} (known: {', '.join(sorted(self._models))})",
                type="UnknownModel",
            )

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
        self._routing = workflow.patched("routing-v1")
        self._can = workflow.patched(CONTINUE_AS_NEW_PATCH)
        first = carry.next_step if carry is not None else 0
        try:
            for index, step in enumerate(start.plan.steps[first:], start=first):
                await self._run_step(index, step)
                if index + 1 < len(start.plan.steps):
                    await self._continue_if_long(index + 1, f"step:{index + 1}")
        except _StepFailed as exc:
            self._state.status = SessionStatus.FAILED
            self._state.error = str(exc)
            await self._finish(SessionStatus.FAILED, error=str(exc))
            raise ApplicationError(str(exc), type="SessionFailed", non_retryable=True) from None
        self._state.status = SessionStatus.COMPLETED
        self._state.current_step = None
        final = self._outputs.get(start.plan.steps[-1].id)
        await self._finish(SessionStatus.COMPLETED, output=final)
        return SessionResult(
            session_id=start.session_id,
            status=SessionStatus.COMPLETED,
            outputs=dict(self._outputs),
            final_output=final,
            input_tokens=self._state.input_tokens,
            output_tokens=self._state.output_tokens,
            cost_usd=self._state.cost_usd,
            model_timeline=list(self._state.model_timeline),
        )

    async def _run_step(self, index: int, step: PlanStep) -> None:
        await self._execute(step, self._state.steps[index])

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
        try:
            if isinstance(step, AgentStep):
                output: JsonValue = await self._agent_step(step, state)
                if step.output_schema is not None:
                    output = structured_output(step.output_schema, output)
            elif isinstance(step, SkillStep):
                output = await self._skill_step(step)
            elif isinstance(step, ApprovalStep):
                output = await self._approval_step(step)
            else:
                output = await run_construct(
                    step, self._run_inner, self._start.input, self._outputs
                )
        except (_StepFailed, TemplateError, ConstructError, OutputError) as exc:
            state.status, state.error = "failed", str(exc)
            self._event(EventKind.STEP_FAILED, step.id, payload={"error": str(exc)})
            await self._flush()
            raise _StepFailed(f"step {step.id!r} failed: {exc}") from None
        state.status, state.output = "completed", output
        self._outputs[step.id] = output
        # A loop's later iterations run as `id#n`; the written id names the latest output.
        self._outputs[base_id(step.id)] = output
        self._event(EventKind.STEP_COMPLETED, step.id)
        await self._flush()

    # ---- agent steps: the pinned tool loop ----------------------------------------------

    def _pin(self, step: AgentStep) -> str:
        """Choose the step's model. Called only at a step boundary: a safe point."""
        boundary = (
            Boundary.SESSION_START if not self._state.model_timeline else Boundary.STEP_CHANGE
        )
        if self._switch is not None:
            model, reason = self._switch.model, f"switch requested: {self._switch.reason}"
            self._switch = None
        elif step.model:
            model, reason = step.model, "named by the step"
        elif self._start.plan.model:
            model, reason = self._start.plan.model, "plan default"
        else:
            model, reason = self._default_model, "registry default"
        previous = self._state.pinned_model
        self._state.pinned_model = model
        self._state.model_timeline.append(
            ModelPin(step_id=step.id, model=model, boundary=boundary, reason=reason)
        )
        self._event(
            EventKind.MODEL_PINNED,
            step.id,
            model=model,
            payload={"boundary": boundary.value, "reason": reason, "previous": previous},
        )
        return model

    async def _route(
        self,
        step: AgentStep,
        prompt_chars: int,
        *,
        failed: dict[str, str] | None = None,
        escalate: str | None = None,
    ) -> str:
        """Ask the router (an activity: it reads live metrics) and pin its answer.

        Called at a safe boundary; with `failed` for a forced failover after the pinned
        deployment died inside the tool loop; with `escalate` (why) when a cascade step's
        answer failed its check. The decision and its reasons are recorded.
        """
        boundary = self._boundary(failed, escalate)
        name: str | None
        if failed:
            name, why = self._route_name, "failover within the same constraints"
        elif escalate:
            name, why = step.escalate_to, f"cascade: {escalate}"
        elif self._switch is not None:
            name, why = self._switch.model, f"switch requested: {self._switch.reason}"
            self._switch = None
        elif step.model:
            name, why = step.model, f"{step.model} named by the step"
        else:
            name = self._start.plan.model
            why = f"{name} is the plan default" if name else "any model"
        self._route_name = name
        previous = self._state.pinned_model
        request = route_request(
            self._start,
            step,
            name=name,
            boundary=boundary,
            current=previous,
            tokens_so_far=self._state.input_tokens + self._state.output_tokens,
            prompt_chars=prompt_chars,
            exclude=failed or {},
        )
        try:
            decision = await self._activity(
                names.ROUTE,
                RouteInput(
                    ctx=self._ctx(step.id),
                    request=request,
                    reserve_budget=boundary is Boundary.SESSION_START,
                ),
                RoutingDecision,
                self._start.options.bookkeeping,
            )
        except (ActivityError, ApplicationError) as exc:
            raise _StepFailed(activity_cause(exc)[1]) from None
        cause = failed.get(previous or "") if failed else None
        if failed:
            why += f" ({decision.failover})"
        self._failover = decision.failover
        reason = f"{why}; {decision.reason}"
        self._state.pinned_model = decision.deployment
        self._state.model_timeline.append(
            ModelPin(
                step_id=step.id,
                model=decision.deployment,
                boundary=boundary,
                reason=reason,
                cause=cause,
            )
        )
        self._event(
            EventKind.MODEL_PINNED,
            step.id,
            key=f"model_pinned:{self._attempt}" if self._attempt else None,
            model=decision.deployment,
            payload={
                "boundary": boundary.value,
                "reason": reason,
                "previous": previous,
                "cause": cause,
                "policy": decision.policy,
                "name": name,
                "rules_fired": list(decision.rules_fired),
                "budget_used": decision.budget_used,
                "candidates": [c.model_dump(mode="json") for c in decision.candidates],
            },
        )
        return decision.deployment

    def _boundary(self, failed: dict[str, str] | None, escalate: str | None) -> Boundary:
        if failed:
            boundary = Boundary.FORCED_FAILOVER
        elif escalate:
            boundary = Boundary.ESCALATION
        elif not self._state.model_timeline:
            boundary = Boundary.SESSION_START
        elif self._after_approval:
            boundary = Boundary.AFTER_APPROVAL
        elif self._start.carry is not None and not self._routed:
            boundary = Boundary.CONTINUE_AS_NEW
        else:
            boundary = Boundary.STEP_CHANGE
        self._after_approval = False
        self._routed = True
        return boundary

    async def _rejected(self, step: AgentStep, answer: JsonValue) -> str | None:
        """Why a cascade step's final answer fails its `accept` check, or None."""
        if step.accept is None:
            return None
        check = await self._activity(
            names.CHECK_ANSWER,
            CheckAnswerInput(ctx=self._ctx(step.id), expression=step.accept, answer=str(answer)),
            CheckAnswerResult,
            self._start.options.bookkeeping,
        )
        return None if check.ok else check.detail

    async def _agent_step(self, step: AgentStep, state: StepState) -> JsonValue:
        inputs, outputs = self._start.input, self._outputs
        if not self._routing:
            model = self._pin(step)
            state.model = model
        allowed = _skill_names(step.skills)
        unknown = [name for name in allowed if name not in self._skills]
        if unknown:
            raise _StepFailed(f"skills not registered: {', '.join(unknown)}")
        tools = [
            ToolDefinition(
                name=spec.tool_name, description=spec.description, parameters=spec.input_schema
            )
            for spec in (self._skills[name] for name in allowed)
        ]
        system = f"Plan: {self._start.plan.name}\nStep: {step.id}"
        if step.instructions:
            system += "\n\n" + render_text(step.instructions, inputs, outputs)
        user = render_text(step.goal, inputs, outputs)
        if inputs:
            user += "\n\nSession input:\n" + json.dumps(inputs, sort_keys=True)
        start = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ]
        if not self._routing:
            return await self._tool_loop(step, state, model, start, tools)
        self._attempt, self._reuse = 0, {}
        failed: dict[str, str] = {}
        model = await self._route(step, len(system) + len(user))
        conversation = list(start)
        escalated = False
        while True:
            state.model = model
            try:
                answer = await self._tool_loop(step, state, model, conversation, tools)
                why = None if escalated else await self._rejected(step, answer)
                if why is None:
                    return answer
                # Cascade: the loop has closed, so this is a safe boundary. Re-run the step
                # from its start on the stronger model; tool results are reused.
                escalated = True
                self._attempt += 1
                conversation = list(start)
                model = await self._route(step, len(system) + len(user), escalate=why)
                continue
            except _DeploymentDown as down:
                # Default: roll the step back to its start (a safe boundary) and re-run it
                # on the next deployment that satisfies the same constraints; tool results
                # of the failed attempt are reused, so no effect runs twice. A policy may
                # instead carry the conversation over to the next deployment mid-loop.
                carry = self._failover == "carry_over"
                if not carry:
                    self._state.in_tool_loop = False
                    conversation = list(start)
                failed[model] = down.cause
                self._attempt += 1
                model = await self._route(step, len(system) + len(user), failed=failed)

    async def _tool_loop(
        self,
        step: AgentStep,
        state: StepState,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolDefinition],
    ) -> JsonValue:
        prefix = f"f{self._attempt}." if self._attempt else ""
        for round_no in range(step.max_rounds):
            await self._flush()
            if self._state.in_tool_loop and self._state.pinned_model != model:
                raise _StepFailed("invariant broken: model changed inside an open tool loop")
            ask = ModelCallInput(
                ctx=self._ctx(step.id),
                round=round_no,
                model=model,
                messages=messages,
                tools=tools,
            )
            if self._routing:
                ask.attempt, ask.tenant, ask.team = (
                    self._attempt,
                    self._start.tenant,
                    self._start.team,
                )
            try:
                result = await self._activity(
                    names.CALL_MODEL, ask, ModelCallResult, self._start.options.model_call
                )
            except ActivityError as exc:
                if self._routing and unavailable(exc):
                    raise _DeploymentDown(activity_cause(exc)[1]) from None
                raise
            state.rounds = round_no + 1
            self._account(result)
            answer = result.response.message
            messages.append(answer)
            if not answer.tool_calls:
                self._state.in_tool_loop = False
                return answer.content or ""
            self._state.in_tool_loop = True
            for index, call in enumerate(answer.tool_calls):
                content = await self._tool_call(step, f"{prefix}{round_no}.{index}", call)
                messages.append(
                    ChatMessage(role="tool", tool_call_id=call.id, name=call.name, content=content)
                )
        self._state.in_tool_loop = False
        raise _StepFailed(f"no final answer after max_rounds={step.max_rounds} model calls")

    async def _tool_call(self, step: AgentStep, call_id: str, call: ToolCall) -> str:
        skill_name = self._tool_to_skill.get(call.name)
        allowed = _skill_names(step.skills)
        if skill_name is None or skill_name not in allowed:
            offered = ", ".join(self._skills[n].tool_name for n in allowed) or "none"
            return self._tool_error(
                step.id, call_id, call.name, f"unknown tool {call.name!r}; tools offered: {offered}"
            )
        if call.arguments is None:
            return self._tool_error(step.id, call_id, call.name, call.parse_error or "no arguments")
        key = reuse_key(skill_name, call.arguments)
        if self._attempt and key in self._reuse:
            self._event(
                EventKind.TOOL_CALL,
                step.id,
                key=f"tool:{call_id}:reused",
                payload={"call_id": call_id, "arguments": call.arguments, "reused": True},
            )
            return self._reuse[key]
        result = await self._invoke_skill(
            step.id, call_id, self._skills[skill_name], call.arguments, step.on_reject
        )
        if result.ok:
            content = json.dumps(result.output, sort_keys=True)
        else:
            content = f"ERROR ({result.error_kind}): {result.error}"
        if self._routing and result.error_kind != "failed":
            # A re-run after a forced failover answers the same call with this result
            # instead of running it again: an effect never repeats.
            self._reuse[key] = content
        return content

    def _tool_error(self, step_id: str, call_id: str, tool: str, error: str) -> str:
        self._event(
            EventKind.TOOL_ERROR,
            step_id,
            key=f"tool:{call_id}",
            payload={"tool": tool, "error": error, "call_id": call_id},
        )
        return f"ERROR (invalid_call): {error}"

    # ---- skills and approvals -----------------------------------------------------------

    async def _invoke_skill(
        self,
        step_id: str,
        call_id: str,
        spec: SkillSpec,
        arguments: JsonObject,
        on_reject: OnReject,
    ) -> SkillCallResult:
        """Run a skill; a gated one first has its arguments checked and a person's approval.

        The skill's approval policy is applied by the validate-only activity to the
        validated arguments (`always`, or its CEL condition); the model never decides it.
        """
        call = SkillCallInput(
            ctx=self._ctx(step_id),
            call_id=call_id,
            skill=spec.name,
            version=spec.version,
            arguments=arguments,
            idempotency_key=self._call_key(spec, step_id, call_id, arguments),
        )
        opts = _skill_options(self._start.options.skill_call, spec)
        gated = spec.requires_approval
        if gated or spec.approval_condition is not None:
            check = await self._activity(
                names.CALL_SKILL,
                call.model_copy(update={"validate_only": True}),
                SkillCallResult,
                opts,
            )
            if not check.ok:
                return check
            call.arguments = check.arguments or arguments
            call.idempotency_key = self._call_key(spec, step_id, call_id, call.arguments)
            gated = gated or check.needs_approval
        if gated:
            decision = await self._await_approval(
                step_id,
                call_id,
                spec,
                call.arguments,
                f"{spec.name}@{spec.version} ({spec.risk.value})"
                f" with {json.dumps(call.arguments, sort_keys=True)}",
            )
            if not decision.approve:
                reason = f"rejected by {decision.decided_by}: {decision.reason}"
                if on_reject is OnReject.FAIL_STEP:
                    raise _StepFailed(f"{spec.name} {reason}")
                return SkillCallResult(ok=False, error=reason, error_kind="rejected")
            call.approval_id = decision.approval_id
            if decision.arguments is not None:
                # The approver's edit, checked against the contract; the skill activity
                # validates it again before it runs.
                call.arguments = decision.arguments
                call.idempotency_key = self._call_key(spec, step_id, call_id, call.arguments)
        try:
            return await self._activity(names.CALL_SKILL, call, SkillCallResult, opts)
        except ActivityError as exc:
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc.cause)
            self._event(
                EventKind.TOOL_ERROR,
                step_id,
                key=f"tool:{call_id}:failed",
                payload={"skill": spec.name, "error": cause, "call_id": call_id},
            )
            if isinstance(exc.cause, ApplicationError) and (
                exc.cause.type == names.SKILL_OUTPUT_INVALID
            ):
                raise _StepFailed(cause) from None
            return SkillCallResult(ok=False, error=cause, error_kind="failed")

    def _call_key(self, spec: SkillSpec, step_id: str, call_id: str, arguments: JsonObject) -> str:
        info = workflow.info()
        return spec.call_key(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_id=step_id,
            call_id=call_id,
            arguments=arguments,
        )

    async def _skill_step(self, step: SkillStep) -> JsonValue:
        spec = self._skills.get(_skill_names([step.skill])[0])
        if spec is None:
            raise _StepFailed(f"skill {step.skill!r} is not registered")
        arguments = render_value(step.arguments, self._start.input, self._outputs)
        if not isinstance(arguments, dict):
            raise _StepFailed("arguments must render to an object")
        result = await self._invoke_skill(step.id, "step", spec, arguments, OnReject.FAIL_STEP)
        if not result.ok:
            raise _StepFailed(f"{step.skill}: {result.error}")
        return result.output

    async def _approval_step(self, step: ApprovalStep) -> JsonValue:
        summary = render_text(step.summary, self._start.input, self._outputs)
        decision = await self._await_approval(step.id, "step", None, {"summary": summary}, summary)
        if not decision.approve and step.on_reject is OnReject.FAIL_STEP:
            raise _StepFailed(f"rejected by {decision.decided_by}: {decision.reason}")
        self._after_approval = True
        return {
            "approved": decision.approve,
            "decided_by": decision.decided_by,
            "reason": decision.reason,
        }

    async def _await_approval(
        self,
        step_id: str,
        call_id: str,
        spec: SkillSpec | None,
        arguments: JsonObject,
        summary: str,
    ) -> ApprovalDecision:
        """Record a request, wait durably for a bound decision, record the decision."""
        binding = binding_hash(
            workflow_id=workflow.info().workflow_id,
            step_id=step_id,
            call_id=call_id,
            skill=spec.name if spec else None,
            skill_version=spec.version if spec else None,
            arguments=arguments,
        )
        pending = PendingApproval(
            approval_id=approval_id_for(binding),
            kind="tool_call" if spec else "step",
            step_id=step_id,
            skill=spec.name if spec else None,
            skill_version=spec.version if spec else None,
            arguments=arguments,
            summary=summary,
            binding_hash=binding,
            risk=spec.risk.value if spec else None,
        )
        policy = ApprovalPolicy()
        if workflow.patched(names.APPROVAL_POLICY_PATCH):
            policy = await self._activity(
                names.RESOLVE_APPROVAL_POLICY,
                ApprovalRequestInput(ctx=self._ctx(step_id), approval=pending),
                ApprovalPolicy,
                self._start.options.bookkeeping,
            )
            pending.group = policy.group
            pending.required = policy.required
        self._pending[pending.approval_id] = pending
        self._state.status = SessionStatus.WAITING_APPROVAL
        await self._flush()
        await self._activity(
            names.RECORD_APPROVAL_REQUEST,
            ApprovalRequestInput(ctx=self._ctx(step_id), approval=pending),
            Ack,
            self._start.options.bookkeeping,
        )
        top_level = self._start.plan.step_ids()
        if spec is None and step_id in top_level:
            # An approval step waits at a plan boundary, which is safe to continue at; a
            # tool-call approval waits inside a tool loop, which never is, and neither
            # does one inside a construct (the construct's progress is not carried).
            index = top_level.index(step_id)
            await self._continue_if_long(index, f"approval:{index}")
        await self._wait_for_decision(step_id, pending, policy)
        decision = self._decisions[pending.approval_id]
        if decision.arguments is not None:
            decision = decision.model_copy(
                update={
                    "edited_binding_hash": binding_hash(
                        workflow_id=workflow.info().workflow_id,
                        step_id=step_id,
                        call_id=call_id,
                        skill=pending.skill,
                        skill_version=pending.skill_version,
                        arguments=decision.arguments,
                    )
                }
            )
        del self._pending[pending.approval_id]
        self._state.status = SessionStatus.RUNNING
        await self._activity(
            names.RECORD_APPROVAL_DECISION,
            ApprovalDecisionInput(ctx=self._ctx(step_id), decision=decision),
            Ack,
            self._start.options.bookkeeping,
        )
        return decision

    async def _wait_for_decision(
        self, step_id: str, pending: PendingApproval, policy: ApprovalPolicy
    ) -> None:
        """Wait for a decision; on each timeout move to the next group, then expire."""

        def decided() -> bool:
            return pending.approval_id in self._decisions

        if policy.timeout_seconds is None:
            await workflow.wait_condition(decided)
            return
        chain = [pending.group, *policy.escalation]
        for level, group in enumerate(chain):
            try:
                await workflow.wait_condition(decided, timeout=policy.timeout_seconds)
                return
            except TimeoutError:
                following = chain[level + 1] if level + 1 < len(chain) else None
                await self._activity(
                    names.ESCALATE_APPROVAL,
                    EscalationInput(
                        ctx=self._ctx(step_id),
                        approval=pending,
                        from_group=group,
                        to_group=following,
                        waited_seconds=policy.timeout_seconds,
                    ),
                    Ack,
                    self._start.options.bookkeeping,
                )
                if decided():
                    return
                pending.group = following
        waited = policy.timeout_seconds * len(chain)
        self._decisions[pending.approval_id] = ApprovalDecision(
            approval_id=pending.approval_id,
            binding_hash=pending.binding_hash,
            approve=False,
            decided_by="runtime",
            reason=f"expired: nobody decided within {waited:g}s"
            f" ({' → '.join(g or '-' for g in chain)})",
        )

    # ---- continue-as-new ----------------------------------------------------------------

    def _resume(self, carry: SessionCarry) -> None:
        """Take over what the previous run handed on (before `run` starts)."""
        self._state = carry.state.model_copy(deep=True)
        self._pending = {p.approval_id: p for p in carry.state.pending_approvals}
        self._state.pending_approvals = []
        self._decisions = {d.approval_id: d for d in carry.decisions}
        self._outputs = dict(carry.outputs)
        self._switch = carry.switch
        self._route_name = carry.route_name
        self._after_approval = carry.after_approval
        self._resumed_at = carry.resumed_at
        self._runs = carry.runs + 1

    async def _continue_if_long(self, next_step: int, point: str) -> None:
        """Continue as new at this safe point if the history has grown past its limit.

        Safe points are between plan steps and an approval step's wait: no tool loop is
        open, so the pinned model, pending approvals, outputs and cost are all the state
        there is, and they travel in `SessionCarry`. Raises `ContinueAsNewError` (through
        `workflow.continue_as_new`) when it continues.
        """
        if not self._can or point == self._resumed_at or self._setup is None:
            return
        info = workflow.info()
        limit = self._start.options.continue_as_new_after
        if limit is None:
            if not info.is_continue_as_new_suggested():
                return
        elif info.get_current_history_length() < limit:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        if any(approval_id in self._decisions for approval_id in self._pending):
            return  # a person decided meanwhile: go on in this run
        carry = SessionCarry(
            next_step=next_step,
            resumed_at=point,
            setup=self._setup,
            state=self.state(),
            outputs=dict(self._outputs),
            decisions=list(self._decisions.values()),
            switch=self._switch,
            route_name=self._route_name,
            after_approval=self._after_approval,
            runs=self._runs,
        )
        self._event(
            EventKind.CONTINUED_AS_NEW,
            self._start.plan.steps[next_step].id,
            key=f"continued_as_new:{self._runs}",
            model=self._state.pinned_model,
            payload={
                "run": self._runs,
                "point": point,
                "history_length": info.get_current_history_length(),
                "pending_approvals": list(self._pending),
                "cost_usd": self._state.cost_usd,
            },
        )
        await self._flush()
        workflow.continue_as_new(self._start.model_copy(update={"carry": carry}))

    # ---- bookkeeping --------------------------------------------------------------------

    def _ctx(self, step_id: str | None = None) -> CallContext:
        info = workflow.info()
        return CallContext(
            session_id=self._start.session_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_id=step_id,
        )

    def _account(self, result: ModelCallResult) -> None:
        usage = result.response.usage
        self._state.input_tokens += usage.input_tokens
        self._state.output_tokens += usage.output_tokens
        self._state.cost_usd += result.cost_usd

    def _event(
        self,
        kind: EventKind,
        step_id: str | None,
        *,
        key: str | None = None,
        model: str | None = None,
        payload: JsonObject | None = None,
    ) -> None:
        wf_id = workflow.info().workflow_id
        self._events.append(
            WorkflowEvent(
                key=f"{wf_id}:{step_id or '-'}:{key or kind.value}",
                kind=kind,
                step_id=step_id,
                model=model,
                payload=payload or {},
            )
        )

    async def _flush(self) -> None:
        if not self._events:
            return
        events, self._events = self._events, []
        await self._activity(
            names.RECORD_EVENTS,
            RecordEventsInput(ctx=self._ctx(), events=events, status=self._state.status),
            Ack,
            self._start.options.bookkeeping,
        )

    async def _finish(
        self, status: SessionStatus, *, output: JsonValue = None, error: str | None = None
    ) -> None:
        await self._flush()
        await self._activity(
            names.FINISH_SESSION,
            FinishSessionInput(
                ctx=self._ctx(),
                status=status,
                output=output,
                error=error,
                input_tokens=self._state.input_tokens,
                output_tokens=self._state.output_tokens,
                cost_usd=self._state.cost_usd,
            ),
            Ack,
            self._start.options.bookkeeping,
        )
        if self._routing:
            await self._activity(
                names.SETTLE_BUDGET,
                SettleBudgetInput(ctx=self._ctx()),
                Ack,
                self._start.options.bookkeeping,
            )

    async def _activity(
        self, name: str, arg: BaseModel, result_type: type[ResultT], opts: ActivityOptions
    ) -> ResultT:
        retry = RetryPolicy(
            initial_interval=opts.initial_retry,
            maximum_interval=opts.max_retry,
            maximum_attempts=opts.max_attempts,
            non_retryable_error_types=NON_RETRYABLE,
        )
        if opts.local:
            local: ResultT = await workflow.execute_local_activity(
                name,
                arg,
                result_type=result_type,
                start_to_close_timeout=opts.start_to_close,
                retry_policy=retry,
            )
            return local
        remote: ResultT = await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=opts.start_to_close,
            heartbeat_timeout=opts.heartbeat,
            retry_policy=retry,
        )
        return remote


def _skill_names(refs: list[str]) -> list[str]:
    """Skill names of plan references: `payments.refund@^1.0` is `payments.refund`."""
    return [ref.partition("@")[0].strip() for ref in refs]


def _skill_options(base: ActivityOptions, spec: SkillSpec) -> ActivityOptions:
    """The session's skill-call options with the contract's timeout and retry laid over."""
    update: dict[str, object] = {}
    if spec.timeout is not None:
        update["start_to_close"] = spec.timeout
    if spec.max_attempts is not None:
        update["max_attempts"] = spec.max_attempts
    if spec.initial_retry is not None:
        update["initial_retry"] = spec.initial_retry
        update["max_retry"] = max(spec.initial_retry, spec.max_retry or base.max_retry)
    elif spec.max_retry is not None:
        update["max_retry"] = max(spec.max_retry, base.initial_retry)
    return base.model_copy(update=update) if update else base


def _decision_result(decision: ApprovalDecision, *, duplicate: bool) -> ApprovalDecisionResult:
    return ApprovalDecisionResult(
        approval_id=decision.approval_id,
        status="approved" if decision.approve else "rejected",
        decided_by=decision.decided_by,
        duplicate=duplicate,
    )
