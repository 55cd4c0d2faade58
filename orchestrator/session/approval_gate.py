"""The approval gate: a durable wait for a person's decision bound to the exact action.

Decisions arrive through the workflow's update; its validators refuse bad ones by the
approvals domain's rules (`orchestrator.approvals.rules`: binding hash, group,
self-approval, delegation), and this part takes them (the two-person rule), waits,
escalates on timeouts, and expires. Update handlers do no I/O: a state change they make
(a first approval of two, a delegation) queues an audit event, and the waiting code
writes it as soon as it is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from temporalio import workflow

from orchestrator.approvals.binding import binding_hash
from orchestrator.approvals.rules import check_decision, check_delegation
from orchestrator.exceptions import ApprovalError, to_failure
from orchestrator.plans.models import (
    ApprovalStep,
    OnReject,
)
from orchestrator.session import names, patches
from orchestrator.session.approval_requests import pending_request
from orchestrator.session.carry import Continuation
from orchestrator.session.core import SessionRuntime, StepFailed
from orchestrator.session.step_types import step_kind
from orchestrator.session.templating import render_text
from orchestrator.session.types import (
    Ack,
    ApprovalDecision,
    ApprovalDecisionInput,
    ApprovalDecisionResult,
    ApprovalDelegation,
    ApprovalDelegationResult,
    ApprovalPolicy,
    ApprovalRequestInput,
    CallCheck,
    CallCheckInput,
    EscalationInput,
    PendingApproval,
    SessionStartInput,
    SessionState,
    SkillCallInput,
    StepState,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject, JsonValue

if TYPE_CHECKING:
    from orchestrator.session.parts import SessionParts

__all__ = ["ApprovalGate", "decision_result"]


class _Keyed(Protocol):
    @property
    def approval_id(self) -> str: ...


KeyedT = TypeVar("KeyedT", bound=_Keyed)


class _ById(MutableMapping[str, KeyedT]):
    """A list of the state model, seen as a mapping by approval id (the list stays the truth).

    Pending approvals and decisions are lists in the state model (and so in the carry and
    the query); the gate looks them up by id. Setting a known id replaces it in place.
    """

    def __init__(self, items: list[KeyedT]) -> None:
        self._items = items

    def _index(self, key: str) -> int:
        for index, item in enumerate(self._items):
            if item.approval_id == key:
                return index
        raise KeyError(key)

    def __getitem__(self, key: str) -> KeyedT:
        return self._items[self._index(key)]

    def __setitem__(self, key: str, value: KeyedT) -> None:
        try:
            self._items[self._index(key)] = value
        except KeyError:
            self._items.append(value)

    def __delitem__(self, key: str) -> None:
        del self._items[self._index(key)]

    def __iter__(self) -> Iterator[str]:
        return iter([item.approval_id for item in self._items])

    def __len__(self) -> int:
        return len(self._items)


class ApprovalGate:
    """Records approval requests, takes decisions and waits for them.

    Its update-side methods (`take_decision`, `validate_decision`, `delegate`,
    `validate_delegation`) run in the workflow's update handlers and do no I/O; the rest
    runs in the workflow's main coroutine.
    """

    def __init__(self, rt: SessionRuntime, continuation: Continuation) -> None:
        self._rt = rt
        self._continuation = continuation
        self._start: SessionStartInput = rt.start
        self._event = rt.event

    @property
    def _state(self) -> SessionState:
        return self._rt.state

    @property
    def _pending(self) -> _ById[PendingApproval]:
        """Pending approvals by id (the state's `pending_approvals`)."""
        return _ById(self._rt.state.pending_approvals)

    @property
    def _decisions(self) -> _ById[ApprovalDecision]:
        """Decisions taken so far by id (the state model's `decisions`)."""
        return _ById(self._rt.memory.decisions)

    def _gate_event(self, kind: EventKind, pending: PendingApproval, key: str, **info: str) -> None:
        """Queue an audit event about a waiting request; the wait writes it (no I/O here)."""
        payload: JsonObject = {
            "approval_id": pending.approval_id,
            "skill": pending.skill,
            "group": pending.group,
            **info,
        }
        self._event(
            kind, pending.step_id, key=f"{kind.value}:{pending.approval_id}:{key}", payload=payload
        )

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
                if pending.delegate == decision.decided_by:
                    pending.delegate = None  # the delegate's turn is spent
                self._gate_event(
                    EventKind.APPROVAL_PARTIAL,
                    pending,
                    decision.decided_by,
                    approved_by=decision.decided_by,
                    progress=f"{len(pending.approved_by)} of {pending.required}",
                )
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
        """Refuse a bad decision before it reaches history (`rules.check_decision`)."""
        try:
            check_decision(
                decision,
                pending=self._undecided(decision.approval_id),
                prior=self._decisions.get(decision.approval_id),
                requested_by=self._start.requested_by,
                where=f"session {self._state.session_id}",
            )
        except ApprovalError as exc:
            raise to_failure(exc) from None

    def _undecided(self, approval_id: str) -> PendingApproval | None:
        """The request `approval_id` while it waits for a decision."""
        return None if approval_id in self._decisions else self._pending.get(approval_id)

    def _delegate(self, request: ApprovalDelegation) -> ApprovalDelegationResult:
        """Hand a (validated) pending request to another member of its group."""
        pending = self._pending[request.approval_id]
        pending.delegate = request.to
        pending.delegations += 1
        self._gate_event(
            EventKind.APPROVAL_DELEGATED,
            pending,
            str(pending.delegations),
            delegated_by=request.delegated_by,
            to=request.to,
            reason=request.reason or "",
        )
        return ApprovalDelegationResult(
            approval_id=pending.approval_id, delegate=request.to, group=pending.group
        )

    def _validate_delegation(self, request: ApprovalDelegation) -> None:
        """Refuse a delegation not from, or not to, a member who may decide (`rules`)."""
        try:
            check_delegation(
                request,
                pending=self._undecided(request.approval_id),
                requested_by=self._start.requested_by,
                where=f"session {self._state.session_id}",
            )
        except ApprovalError as exc:
            raise to_failure(exc) from None

    async def approval_step(self, step: ApprovalStep) -> JsonValue:
        """Run an approval step: wait for a person's decision on its summary."""
        summary = render_text(step.summary, self._start.input, self._rt.outputs)
        decision, record = await self.decide(step.id, "step", None, {"summary": summary}, summary)
        await self.record_decision(record)
        if not decision.approve and step.on_reject is OnReject.FAIL_STEP:
            raise StepFailed(f"rejected by {decision.decided_by}: {decision.reason}")
        self._rt.memory.after_approval = True
        return {
            "approved": decision.approve,
            "decided_by": decision.decided_by,
            "reason": decision.reason,
        }

    async def decide(
        self,
        step_id: str,
        call_id: str,
        spec: SkillSpec | None,
        arguments: JsonObject,
        summary: str,
    ) -> tuple[ApprovalDecision, ApprovalDecisionInput]:
        """Record a request and wait durably for a bound decision, not yet recorded.

        The decision is stored by `record_decision`, or by the call it lets run
        (`SkillCalls`, from `patches.GATE_GENERATION`).
        """
        pending = pending_request(
            workflow_id=workflow.info().workflow_id,
            step_id=step_id,
            call_id=call_id,
            spec=spec,
            arguments=arguments,
            summary=summary,
        )
        rt = self._rt
        if not rt.batched:
            workflow.deprecate_patch(patches.APPROVAL_EVENTS)
        carried = self._pending.get(pending.approval_id)
        requested_at = workflow.now() if carried is None else None
        if carried is not None:
            # Continued as new while it waited: approvals and a delegation so far hold.
            pending.approved_by = carried.approved_by
            pending.delegate, pending.delegations = carried.delegate, carried.delegations
        if self.fewer_calls():
            # One local activity resolves the policy and stores the request with the
            # events pending before it. The request joins the pending ones once its policy
            # is known: a decision that overtakes it is refused, never taken unguarded.
            self._state.status = SessionStatus.WAITING_APPROVAL
            policy = await rt.activity(
                names.REQUEST_APPROVAL,
                ApprovalRequestInput(
                    ctx=rt.ctx(step_id), approval=pending, events=rt.take_events()
                ),
                ApprovalPolicy,
                self._start.options.bookkeeping,
            )
            pending.group = policy.group
            pending.required = policy.required
            self._pending[pending.approval_id] = pending
        else:
            policy = await self._request_apart(step_id, pending)
        return await self.await_decision(step_id, call_id, pending, policy, requested_at)

    async def check_call(self, call: SkillCallInput) -> CallCheck:
        """Check a gated call's arguments and, when its contract gates them, request it.

        One local activity (`orchestrator.check_call`, `patches.CHECK_GENERATION`) where
        a session of an earlier generation ran a validate-only `call_skill` and then
        `request_approval`. A request it made joins the pending ones with its policy.
        """
        rt = self._rt
        checked = await rt.activity(
            names.CHECK_CALL,
            CallCheckInput(call=call, events=rt.take_events()),
            CallCheck,
            self._start.options.bookkeeping,
        )
        if checked.approval is not None:
            self._state.status = SessionStatus.WAITING_APPROVAL
            self._pending[checked.approval.approval_id] = checked.approval
        return checked

    def checks_calls(self) -> bool:
        """Whether this session checks gated calls as `patches.CHECK_GENERATION` says."""
        setup = self._rt.setup
        return setup is not None and setup.generation >= patches.CHECK_GENERATION

    async def await_decision(
        self,
        step_id: str,
        call_id: str,
        pending: PendingApproval,
        policy: ApprovalPolicy,
        requested_at: datetime | None,
    ) -> tuple[ApprovalDecision, ApprovalDecisionInput]:
        """Wait durably for a decision on a stored request; the decision is not recorded."""
        rt = self._rt
        tool_call = pending.kind == "tool_call"
        top_level = self._start.plan.step_ids()
        if not tool_call and step_id in top_level:
            # An approval step waits at a plan boundary, which is safe to continue at; a
            # tool-call approval waits inside a tool loop, which never is, and neither
            # does one inside a construct (the construct's progress is not carried).
            index = top_level.index(step_id)
            await self._continuation.continue_if_long(index, f"approval:{index}")
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
        record = ApprovalDecisionInput(
            ctx=rt.ctx(step_id),
            decision=decision,
            credit=rt.credit() if tool_call else None,
            requested_at=requested_at,
            skill=pending.skill,
        )
        return decision, record

    async def record_decision(self, record: ApprovalDecisionInput) -> None:
        """Store a decision the workflow took, by an activity of its own."""
        rt = self._rt
        options = self._start.options.bookkeeping
        if options.local and (rt.batched or workflow.patched(patches.DECISION_DURABLE)):
            # A local activity runs inside the workflow task that took the update, before
            # that task is saved: a worker dying in between left the store saying
            # "approved" while the update was gone and the session waited for ever. A
            # regular activity is scheduled only by a saved task, so the store only ever
            # shows a decision the history already holds.
            options = options.model_copy(update={"local": False})
        await rt.activity(names.RECORD_APPROVAL_DECISION, record, Ack, options)

    def fewer_calls(self) -> bool:
        """Whether this session's gate takes the paths of `patches.GATE_GENERATION`."""
        setup = self._rt.setup
        return setup is not None and setup.generation >= patches.GATE_GENERATION

    async def _request_apart(self, step_id: str, pending: PendingApproval) -> ApprovalPolicy:
        """The request as a session before `patches.GATE_GENERATION` makes it.

        The policy, the events pending and the request, each by a local activity.
        """
        rt = self._rt
        policy = ApprovalPolicy()
        if rt.batched or workflow.patched(patches.APPROVAL_POLICY):
            policy = await rt.activity(
                names.RESOLVE_APPROVAL_POLICY,
                ApprovalRequestInput(ctx=rt.ctx(step_id), approval=pending),
                ApprovalPolicy,
                self._start.options.bookkeeping,
            )
            pending.group = policy.group
            pending.required = policy.required
        self._pending[pending.approval_id] = pending
        self._state.status = SessionStatus.WAITING_APPROVAL
        await rt.flush()
        await rt.activity(
            names.RECORD_APPROVAL_REQUEST,
            ApprovalRequestInput(ctx=rt.ctx(step_id), approval=pending),
            Ack,
            self._start.options.bookkeeping,
        )
        return policy

    async def _wait_for_decision(
        self, step_id: str, pending: PendingApproval, policy: ApprovalPolicy
    ) -> None:
        """Wait for a decision; on each timeout move to the next group, then expire."""

        def decided() -> bool:
            return pending.approval_id in self._decisions

        timeout = policy.timeout_seconds
        chain = [pending.group, *policy.escalation] if timeout is not None else [pending.group]
        for level, group in enumerate(chain):
            if await self._wait_turn(pending, decided, timeout, chain[level + 1 :]):
                return
            assert timeout is not None  # only a timed turn ends undecided
            following = chain[level + 1] if level + 1 < len(chain) else None
            await self._rt.activity(
                names.ESCALATE_APPROVAL,
                EscalationInput(
                    ctx=self._rt.ctx(step_id),
                    approval=pending,
                    from_group=group,
                    to_group=following,
                    waited_seconds=timeout,
                ),
                Ack,
                self._start.options.bookkeeping,
            )
            if decided():
                return
            pending.group = following
            pending.delegate = None  # a delegation holds within its group only
        assert timeout is not None
        waited = timeout * len(chain)
        self._decisions[pending.approval_id] = ApprovalDecision(
            approval_id=pending.approval_id,
            binding_hash=pending.binding_hash,
            approve=False,
            decided_by="runtime",
            reason=f"expired: nobody decided within {waited:g}s"
            f" ({' → '.join(g or '-' for g in chain)})",
        )

    async def _wait_turn(
        self,
        pending: PendingApproval,
        decided: Callable[[], bool],
        timeout: float | None,
        chain: list[str | None],
    ) -> bool:
        """Wait up to `timeout` seconds for a decision; True if one came.

        Audit events that update handlers queue meanwhile (a first approval of two, a
        delegation) are written as they come, not at the end.
        """
        rt = self._rt
        deadline = None if timeout is None else workflow.now() + timedelta(seconds=timeout)
        pending.deadline = deadline
        pending.chain = [g for g in chain if g is not None]
        while True:
            left = None if deadline is None else (deadline - workflow.now()).total_seconds()
            if left is not None and left <= 0:
                return decided()
            try:
                await workflow.wait_condition(lambda: decided() or bool(rt.events), timeout=left)
            except TimeoutError:
                await rt.flush()
                return decided()
            await rt.flush()
            if decided():
                return True

    # What the workflow's update handlers call.
    take_decision = _take_decision
    validate_decision = _validate_decision
    delegate = _delegate
    validate_delegation = _validate_delegation


def decision_result(decision: ApprovalDecision, *, duplicate: bool) -> ApprovalDecisionResult:
    """What the update returns for a final decision (or a duplicate of one)."""
    return ApprovalDecisionResult(
        approval_id=decision.approval_id,
        status="approved" if decision.approve else "rejected",
        decided_by=decision.decided_by,
        duplicate=duplicate,
    )


@step_kind("approval")
async def _run_approval(parts: SessionParts, step: ApprovalStep, _state: StepState) -> JsonValue:
    return await parts.gate.approval_step(step)
