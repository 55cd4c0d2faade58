"""Delegation, and the live state of a waiting request, from outside the workflow.

A member of the deciding group may hand a pending request to another member: from then
on only that delegate may decide it (or hand it on), until they approve one of two
required approvals (the second is the group's again) or the request escalates to the next
group (a delegation holds within its group). The workflow checks every rule itself, in the
update's validator, and writes each delegation as an `approval_delegated` audit event;
the surfaces (API, inbox, CLI) only authenticate both people and pass their groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from orchestrator import names
from orchestrator.approvals.types import (
    ApprovalDelegation,
    ApprovalDelegationResult,
    PendingApproval,
    SessionView,
)
from orchestrator.exceptions import ApprovalError, from_failure
from orchestrator.store.records import ApprovalRecord, ApprovalStatus
from orchestrator.store.store import Store

__all__ = ["delegate_approval", "live_request", "live_state"]

QUERY_TIMEOUT = timedelta(seconds=5)
"""How long a page waits for the workflow's live view before showing the store's."""


async def delegate_approval(
    client: Client,
    store: Store,
    approval_id: str,
    *,
    delegated_by: str,
    groups: Sequence[str],
    to: str,
    to_groups: Sequence[str],
    reason: str | None = None,
) -> ApprovalDelegationResult:
    """Hand the pending request `approval_id` from `delegated_by` to `to`.

    Raises:
        ApprovalError: unknown or decided request, or a delegation the workflow refuses
            (not in the group, to oneself, to outside the group, to the requester, ...).
    """
    record = await store.get_approval(approval_id)
    if record is None:
        raise ApprovalError(f"no approval request {approval_id!r}")
    if record.status is not ApprovalStatus.PENDING:
        raise ApprovalError(
            f"approval {approval_id} was already {record.status.value} by {record.decided_by}"
        )
    handle = client.get_workflow_handle(record.workflow_id)
    try:
        result: ApprovalDelegationResult = await handle.execute_update(
            names.DELEGATE_APPROVAL,
            ApprovalDelegation(
                approval_id=approval_id,
                binding_hash=record.binding_hash,
                delegated_by=delegated_by,
                groups=list(groups),
                to=to,
                to_groups=list(to_groups),
                reason=reason,
            ),
            result_type=ApprovalDelegationResult,
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        refused = from_failure(cause)
        if isinstance(refused, ApprovalError):
            raise refused from None  # the workflow's typed refusal, e.g. ApprovalBySelf
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ApprovalError(message) from None
    except RPCError as exc:
        raise ApprovalError(f"approval {approval_id}: its session is not waiting: {exc}") from None
    return result


async def live_state(client: Client, record: ApprovalRecord) -> SessionView | None:
    """The live state of the session that asked for `record`, or None if nobody answers.

    Read as a `SessionView`: the waiting requests and the steps, all a page shows.
    """
    handle = client.get_workflow_handle(record.workflow_id)
    try:
        state: SessionView = await handle.query(
            names.STATE_QUERY, result_type=SessionView, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        return None
    return state


async def live_request(client: Client, record: ApprovalRecord) -> PendingApproval | None:
    """The waiting request as its workflow holds it now, or None.

    The live view has what the store does not: the current group and the chain after it,
    the group's deadline, who has approved so far, and the delegate. None when the request
    is decided or the workflow does not answer (no worker), so pages fall back to the store.
    """
    if record.status is not ApprovalStatus.PENDING:
        return None
    state = await live_state(client, record)
    for pending in state.pending_approvals if state else []:
        if pending.approval_id == record.approval_id:
            return pending
    return None
