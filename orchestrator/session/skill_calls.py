"""Skill calls: contract options, the runtime's approval policy, and effects keyed once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from orchestrator.exceptions import SkillMayHaveRun, SkillOutputError, from_failure
from orchestrator.plans.models import (
    OnReject,
    SkillStep,
)
from orchestrator.session import names
from orchestrator.session.approval_gate import ApprovalGate
from orchestrator.session.approval_requests import call_summary
from orchestrator.session.core import SessionRuntime, StepFailed
from orchestrator.session.step_types import step_kind
from orchestrator.session.templating import render_value
from orchestrator.session.types import (
    ActivityOptions,
    ApprovalDecision,
    ApprovalDecisionInput,
    SkillCallInput,
    SkillCallResult,
    StepState,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind
from orchestrator.types import JsonObject, JsonValue

if TYPE_CHECKING:
    from orchestrator.session.parts import SessionParts

__all__ = ["SkillCalls", "skill_names", "skill_options"]


class SkillCalls:
    """Runs skills for tool calls and skill steps, gating them as their contract says."""

    def __init__(self, rt: SessionRuntime, gate: ApprovalGate) -> None:
        self._rt = rt
        self._gate = gate

    async def invoke(
        self,
        step_id: str,
        call_id: str,
        spec: SkillSpec,
        arguments: JsonObject,
        on_reject: OnReject,
    ) -> SkillCallResult:
        """Run a skill; a gated one first has its arguments checked and a person's approval.

        The skill's approval policy is applied by an activity to the validated arguments
        (`always`, or its CEL condition): `check_call`, which also stores the request, or
        before `patches.CHECK_GENERATION` a validate-only `call_skill`. The model never
        decides it.
        """
        rt = self._rt
        call = SkillCallInput(
            ctx=rt.ctx(step_id),
            call_id=call_id,
            skill=spec.name,
            version=spec.version,
            arguments=arguments,
            idempotency_key=self._call_key(spec, step_id, call_id, arguments),
            credit=rt.credit(),
        )
        opts = skill_options(rt.start.options.skill_call, spec)
        decided = await self._checked(step_id, call_id, spec, call, opts)
        if isinstance(decided, SkillCallResult):
            return decided  # invalid arguments
        if decided is not None:
            decision, record = decided
            if decision.approve and self._gate.fewer_calls() and not opts.local:
                # The call records it before it runs: a regular activity, scheduled only
                # once the task that took the decision is saved (`patches.DECISION_DURABLE`).
                call.decision = record
            else:
                await self._gate.record_decision(record)
            if not decision.approve:
                reason = f"rejected by {decision.decided_by}: {decision.reason}"
                if on_reject is OnReject.FAIL_STEP:
                    raise StepFailed(f"{spec.name} {reason}")
                return SkillCallResult(ok=False, error=reason, error_kind="rejected")
            call.approval_id = decision.approval_id
            if decision.arguments is not None:
                # The approver's edit, checked against the contract; the skill activity
                # validates it again before it runs.
                call.arguments = decision.arguments
                call.idempotency_key = self._call_key(spec, step_id, call_id, call.arguments)
        try:
            return await rt.activity(names.CALL_SKILL, call, SkillCallResult, opts)
        except ActivityError as exc:
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc.cause)
            if call.decision is not None:
                # The call failed for good, perhaps before it recorded its approval: the
                # decision's own activity makes sure (a second write changes nothing).
                await self._gate.record_decision(call.decision)
            rt.event(
                EventKind.TOOL_ERROR,
                step_id,
                key=f"tool:{call_id}:failed",
                payload={"skill": spec.name, "error": cause, "call_id": call_id},
            )
            if isinstance(from_failure(exc), (SkillOutputError, SkillMayHaveRun)):
                # A broken contract fails the step; so does a call that may have run
                # already: a person decides, the model must not retry it.
                raise StepFailed(cause) from None
            return SkillCallResult(ok=False, error=cause, error_kind="failed")

    async def _checked(
        self,
        step_id: str,
        call_id: str,
        spec: SkillSpec,
        call: SkillCallInput,
        opts: ActivityOptions,
    ) -> SkillCallResult | tuple[ApprovalDecision, ApprovalDecisionInput] | None:
        """A call's arguments checked (`call` takes the valid ones) and its gate passed.

        Returns the invalid arguments' result, the decision a gated call waited for (not
        recorded yet), or None for a call no approval gates.
        """
        rt = self._rt
        gated = spec.requires_approval
        if not gated and spec.approval_condition is None:
            return None
        check = call.model_copy(update={"validate_only": True})
        if self._gate.checks_calls():
            # One local activity checks the arguments and, if gated, stores the request.
            checked = await self._gate.check_call(check)
            if not checked.result.ok:
                return checked.result
            self._take_arguments(spec, step_id, call, checked.result)
            if checked.approval is None or checked.policy is None:
                return None
            return await self._gate.await_decision(
                step_id, call_id, checked.approval, checked.policy, workflow.now()
            )
        result = await rt.activity(names.CALL_SKILL, check, SkillCallResult, opts)
        if not result.ok:
            return result
        self._take_arguments(spec, step_id, call, result)
        if not (gated or result.needs_approval):
            return None
        summary = call_summary(spec, call.arguments)
        return await self._gate.decide(step_id, call_id, spec, call.arguments, summary)

    def _take_arguments(
        self, spec: SkillSpec, step_id: str, call: SkillCallInput, checked: SkillCallResult
    ) -> None:
        """The checked arguments (defaults filled) become the call's, and key it."""
        call.arguments = checked.arguments or call.arguments
        call.idempotency_key = self._call_key(spec, step_id, call.call_id, call.arguments)

    def _call_key(self, spec: SkillSpec, step_id: str, call_id: str, arguments: JsonObject) -> str:
        info = workflow.info()
        return spec.call_key(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_id=step_id,
            call_id=call_id,
            arguments=arguments,
        )

    async def skill_step(self, step: SkillStep) -> JsonValue:
        """Run a skill step: one call with its templated arguments."""
        spec = self._rt.skills.get(skill_names([step.skill])[0])
        if spec is None:
            raise StepFailed(f"skill {step.skill!r} is not registered")
        arguments = render_value(step.arguments, self._rt.start.input, self._rt.outputs)
        if not isinstance(arguments, dict):
            raise StepFailed("arguments must render to an object")
        result = await self.invoke(step.id, "step", spec, arguments, OnReject.FAIL_STEP)
        if not result.ok:
            raise StepFailed(f"{step.skill}: {result.error}")
        return result.output


def skill_names(refs: list[str]) -> list[str]:
    """Skill names of plan references: `payments.refund@^1.0` is `payments.refund`."""
    return [ref.partition("@")[0].strip() for ref in refs]


def skill_options(base: ActivityOptions, spec: SkillSpec) -> ActivityOptions:
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


@step_kind("skill")
async def _run_skill(parts: SessionParts, step: SkillStep, _state: StepState) -> JsonValue:
    return await parts.skills.skill_step(step)
