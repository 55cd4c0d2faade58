"""The approval rules, once: who may decide or delegate a request, and what a decision holds.

Four layers enforce them and all call these functions: the session workflow's update
validators (the authority: a refused update never reaches history), the JSON API, the
inbox and the CLI (which check first, to answer with the right status before a round
trip, and when no worker is up to answer). Each rule is pure: it reads the facts it is
given and raises a typed `ApprovalError` subclass, whose message the surfaces show as is
and the workflow sends across the boundary with `to_failure`.

A person's standing on a request comes down to four facts: the group that decides it
now, who started the session (never its decider), the delegate if a member handed it on
(then only they decide), and who gave the first of two required approvals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.approvals.people import ApproverDirectory
from orchestrator.approvals.types import (
    ApprovalDecision,
    ApprovalDelegation,
    ApprovalPolicy,
    PendingApproval,
)
from orchestrator.exceptions import (
    ApprovalAlreadyDecided,
    ApprovalBindingMismatch,
    ApprovalBySelf,
    ApprovalDelegated,
    ApprovalDelegationRefused,
    ApprovalDelegationUnsupported,
    ApprovalEditNotAllowed,
    ApprovalNotInGroup,
    ApprovalReasonRequired,
    UnknownApproval,
)

__all__ = [
    "check_bound",
    "check_content",
    "check_decider",
    "check_decision",
    "check_delegate_in_group",
    "check_delegation",
    "delegates",
    "policy_for",
    "same_decision",
]


def same_decision(prior: ApprovalDecision, decision: ApprovalDecision) -> bool:
    """Whether `decision` repeats `prior` (a double submit): the same verdict on the same action."""
    return prior.approve == decision.approve and prior.binding_hash == decision.binding_hash


def check_bound(
    approval_id: str, pending: PendingApproval | None, binding_hash: str, *, what: str, where: str
) -> PendingApproval:
    """The undecided request `pending`, if `binding_hash` is the hash of its action.

    `what` says what carried the hash ("the decision was made on"), `where` names the
    session, both for the message.

    Raises:
        UnknownApproval: no undecided request `approval_id` (`pending` is None).
        ApprovalBindingMismatch: the hash is another action's; nothing may be released.
    """
    if pending is None:
        raise UnknownApproval(f"no pending approval {approval_id} in {where}")
    if pending.binding_hash != binding_hash:
        raise ApprovalBindingMismatch(
            f"approval {approval_id}: {what} a different action"
            " (binding hash mismatch); nothing was released"
        )
    return pending


def check_content(*, approve: bool, reason: str | None, edited: bool, kind: str | None) -> None:
    """What a decision must hold: a reason to reject; edited arguments only to approve a call.

    `kind` is the request's (`tool_call` or `step`); None when the caller does not know it
    yet, and then only the verdict limits an edit.

    Raises:
        ApprovalReasonRequired: a rejection with no (or a blank) reason.
        ApprovalEditNotAllowed: changed arguments on a rejection or on an approval step.
    """
    if not approve and not (reason or "").strip():
        raise ApprovalReasonRequired("a rejection needs a reason")
    if edited and (not approve or kind not in (None, "tool_call")):
        raise ApprovalEditNotAllowed("arguments can be edited only when approving a skill call")


def check_decider(
    approval_id: str,
    who: str,
    *,
    groups: Sequence[str] | None,
    group: str | None,
    requested_by: str | None,
    delegate: str | None,
    assigned_only: bool = False,
) -> None:
    """Whether `who` may decide the request now.

    `groups` are the person's as an authenticating surface knows them; None on an operator
    surface (the CLI without an approvers file), which checks no group. A person with
    groups decides only a request that one of them decides now (`group`); a request no
    group decides (the worker's policy named none) is open to them, unless
    `assigned_only`: the surfaces that read the approvers file themselves leave a request
    the file gives no group to nobody.

    Raises:
        ApprovalBySelf: `who` started the session that asked.
        ApprovalNotInGroup: `who` is not in the group that decides it now.
        ApprovalDelegated: it was handed to someone else, who alone decides it now.
    """
    if requested_by is not None and who == requested_by:
        raise ApprovalBySelf(f"{who} started this session and cannot decide its approvals")
    if groups is not None and (group not in groups if group else assigned_only):
        raise ApprovalNotInGroup(
            f"{who} is not in the group that decides this request ({group or 'none'})"
        )
    if delegate is not None and who != delegate:
        raise ApprovalDelegated(
            f"approval {approval_id} was delegated to {delegate}, who alone decides it now"
        )


def check_decision(
    decision: ApprovalDecision,
    *,
    pending: PendingApproval | None,
    prior: ApprovalDecision | None,
    requested_by: str | None,
    where: str,
) -> None:
    """Refuse a bad decision; a repeat of the decision already taken passes (a duplicate).

    `pending` is the undecided request of that id (None if there is none), `prior` the
    decision already taken on it.

    Raises:
        ApprovalAlreadyDecided: it was decided before, differently.
        ApprovalError: any refusal of `check_bound`, `check_content` or `check_decider`.
    """
    if prior is not None:
        if same_decision(prior, decision):
            return
        verb = "approved" if prior.approve else "rejected"
        raise ApprovalAlreadyDecided(
            f"approval {decision.approval_id} was already {verb} by {prior.decided_by}"
        )
    bound = check_bound(
        decision.approval_id,
        pending,
        decision.binding_hash,
        what="the decision was made on",
        where=where,
    )
    check_content(
        approve=decision.approve,
        reason=decision.reason,
        edited=decision.arguments is not None,
        kind=bound.kind,
    )
    check_decider(
        decision.approval_id,
        decision.decided_by,
        groups=decision.groups,
        group=bound.group,
        requested_by=requested_by,
        delegate=bound.delegate,
    )


def check_delegate_in_group(
    approval_id: str, group: str | None, to: str, to_groups: Iterable[str]
) -> None:
    """Whether `to` belongs to `group`, the one that decides the request: delegation stays in it.

    Raises:
        ApprovalDelegationRefused: `to` is outside the group (or no group decides it).
    """
    if group is None or group not in to_groups:
        raise ApprovalDelegationRefused(
            f"approval {approval_id} cannot be delegated: {to} is not in"
            f" {group or 'any deciding group'}; a request is delegated within its group"
        )


def check_delegation(
    request: ApprovalDelegation,
    *,
    pending: PendingApproval | None,
    requested_by: str | None,
    where: str,
) -> None:
    """Refuse a delegation that is not from, or not to, a member who may decide.

    Raises:
        UnknownApproval, ApprovalBindingMismatch: as `check_bound`.
        ApprovalDelegationUnsupported: no group decides the request.
        ApprovalNotInGroup: the delegating person is not in that group.
        ApprovalDelegationRefused: not the delegate's to hand on, the requester's, to
            oneself, to outside the group, to the requester, or to who approved already.
    """
    bound = check_bound(
        request.approval_id, pending, request.binding_hash, what="the delegation names", where=where
    )
    group, by, to = bound.group, request.delegated_by, request.to
    if group is None:
        raise ApprovalDelegationUnsupported(
            f"approval {request.approval_id} has no deciding group to delegate within"
        )
    if group not in request.groups:
        raise ApprovalNotInGroup(f"{by} is not in the group that decides this request ({group})")
    refusal = None
    if bound.delegate is not None and by != bound.delegate:
        refusal = f"it was delegated to {bound.delegate}; only they may hand it on"
    elif by == requested_by:
        refusal = f"{by} started this session and cannot decide its approvals"
    elif to == by:
        refusal = "delegate to another member of the group"
    if refusal is None:
        check_delegate_in_group(request.approval_id, group, to, request.to_groups)
        if to == requested_by:
            refusal = f"{to} started this session and cannot decide its approvals"
        elif to in bound.approved_by:
            refusal = f"{to} has already approved it; the other approval must be someone else's"
    if refusal is not None:
        raise ApprovalDelegationRefused(
            f"approval {request.approval_id} cannot be delegated: {refusal}"
        )


def delegates(
    who: str,
    *,
    group: str | None,
    members: Mapping[str, Sequence[str]],
    requested_by: str | None,
    approved_by: Iterable[str] = (),
) -> list[str]:
    """Whom `who` may hand a request to: the group's other members `check_delegation` allows.

    `members` maps each approver's name to their groups.
    """
    if group is None:
        return []
    barred = {who, *approved_by, *([requested_by] if requested_by else [])}
    return [name for name, groups in members.items() if group in groups and name not in barred]


def policy_for(directory: ApproverDirectory, pending: PendingApproval) -> ApprovalPolicy:
    """Who decides `pending`, how many of them, and how long each group has.

    The group is the approvers file's for the skill; two people approve when the skill's
    risk level is one of the policy's `two_person_risks`.
    """
    group = directory.group_for_skill(pending.skill)
    policy = directory.policy
    two = pending.risk is not None and pending.risk in policy.two_person_risks
    return ApprovalPolicy(
        group=group,
        required=2 if two else 1,
        escalation=directory.chain_after(group),
        timeout_seconds=policy.timeout_seconds,
    )
