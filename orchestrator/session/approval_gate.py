"""The approval gate: a durable wait for a person's decision bound to the exact action.

Decisions arrive through the workflow's update; this part validates them (binding hash,
group, self-approval, the two-person rule), waits, escalates on timeouts, and expires.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from orchestrator.approvals.binding import approval_id_for, binding_hash
from orchestrator.plans.models import (
    ApprovalStep,
    OnReject,
)
from orchestrator.session import names
from orchestrator.session.carry import Continuation
from orchestrator.session.core import StepFailed
from orchestrator.session.templating import render_text
from orchestrator.session.types import (
    Ack,
    ApprovalDecision,
    ApprovalDecisionInput,
    ApprovalDecisionResult,
    ApprovalPolicy,
    ApprovalRequestInput,
    EscalationInput,
    PendingApproval,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import SessionStatus
from orchestrator.types import JsonObject, JsonValue

__all__ = ["ApprovalGate", "decision_result"]


class ApprovalGate(Continuation):
    """Records approval requests, takes decisions and waits for them."""

    def _take_decision(self, decision: ApprovalDecision) -> ApprovalDecisionResult:
        """Take a person's (validated) decision on a pending approval."""
        prior = self._decisions.get(decision.approval_id)
        if prior is not None:
            return decision_result(prior, duplicate=True)
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
        return decision_result(decision, duplicate=False)

    def _validate_decision(self, decision: ApprovalDecision) -> None:
        """Refuse a bad decision before it reaches history.

        Unknown id, another action's binding, a second different decision, a rejection
        without reason, self-approval, a person outside the deciding group.
        """
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

    async def _approval_step(self, step: ApprovalStep) -> JsonValue:
        summary = render_text(step.summary, self._start.input, self._outputs)
        decision = await self._await_approval(step.id, "step", None, {"summary": summary}, summary)
        if not decision.approve and step.on_reject is OnReject.FAIL_STEP:
            raise StepFailed(f"rejected by {decision.decided_by}: {decision.reason}")
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


def decision_result(decision: ApprovalDecision, *, duplicate: bool) -> ApprovalDecisionResult:
    """What the update returns for a final decision (or a duplicate of one)."""
    return ApprovalDecisionResult(
        approval_id=decision.approval_id,
        status="approved" if decision.approve else "rejected",
        decided_by=decision.decided_by,
        duplicate=duplicate,
    )
