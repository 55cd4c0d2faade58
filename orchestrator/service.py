"""Operations the CLI, tests and (later) the HTTP API share: start, decide, inspect.

They talk to Temporal through a client and read the store; none of them changes a
session except through the workflow's own update handlers, so every rule the workflow
enforces (binding, single decision) holds whatever surface a person uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from orchestrator.exceptions import ApprovalError, from_failure
from orchestrator.plans.models import Plan
from orchestrator.routing.budgets import applicable, check_new_session
from orchestrator.routing.policy import Budget
from orchestrator.session import names
from orchestrator.session.names import workflow_id_for
from orchestrator.session.types import (
    ApprovalDecision,
    ApprovalDecisionResult,
    SessionResult,
    SessionStartInput,
    SessionState,
)
from orchestrator.session_start import StartOptions, build_start
from orchestrator.store.records import ApprovalStatus
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

if TYPE_CHECKING:
    from orchestrator.runtime import Runtime

__all__ = [
    "StartOptions",
    "build_start",
    "checked_start",
    "decide_approval",
    "launch",
    "query_state",
    "start_session",
    "workflow_id_for",
]


async def checked_start(
    plan: Plan,
    input: JsonObject,
    how: StartOptions | None = None,
    *,
    budgets: Sequence[Budget] = (),
    store: Store | str | None = None,
) -> SessionStartInput:
    """A session's start, built (`build_start`) and checked as only a client can check it.

    `budgets` (the models file's) are checked against `store`, so a session no budget of
    its tenant and team could cover is refused before it starts; the reservation at its
    first routing decision is what holds. `store` may be a database URL, opened only if a
    budget applies (a refusal then needs no other set-up, and no budget no database).

    Raises:
        orchestrator.exceptions.SessionInputError: the input does not fit the plan.
        orchestrator.exceptions.BudgetExceededError: a budget cannot cover a new session.
        ValueError: a budget applies and no store was given to check it against.
    """
    start = build_start(plan, input, how or StartOptions(), fresh_id=lambda: uuid.uuid4().hex[:12])
    budgets = list(budgets)
    if applicable(budgets, start.tenant, start.team):
        if store is None:
            raise ValueError("checked_start: budgets apply to this session; pass the store")
        now = datetime.now(UTC)
        if isinstance(store, str):
            async with await Store.open(store) as opened:
                await check_new_session(opened, budgets, start.tenant, start.team, now)
        else:
            await check_new_session(store, budgets, start.tenant, start.team, now)
    return start


async def launch(
    client: Client,
    start: SessionStartInput,
    *,
    task_queue: str,
    join: bool = False,
    memo: Mapping[str, Any] | None = None,
    runtime: Runtime | None = None,
) -> WorkflowHandle[object, SessionResult]:
    """Start the session's workflow from a start `build_start` (or `checked_start`) built.

    `join`: when a run of that session id is already running, return its handle instead
    of failing, and never start a closed session's id again (MCP's idempotent calls).
    `memo`: the run's memo (who started it, for whom), read back with `describe()`.

    A fresh start asks for eager workflow start: when `client` also serves a worker on
    `task_queue` with a free workflow-task slot (a `stack` with its worker, the tests'
    workers, the benches), the server hands the run's first workflow task back
    in the start's own response instead of through matching and the worker's poll, about
    6 ms sooner to the first model call on the tuned dev server. Without such a worker the
    SDK drops the request and the start goes the usual way. A joining start does not ask
    (an existing run has no first task to hand over).

    `runtime`: the worker's runtime, when the caller holds it (a stack, the tests' workers,
    the benches). A fresh start then resolves the session's setup here, with no write
    (`session.resolution.prepare_start`), and the run skips its `start_session` local
    activity (`patches.OPENING_GENERATION`). A join never does: it must not route, and
    an existing run has its setup.

    Raises:
        temporalio.exceptions.WorkflowAlreadyStartedError: a session of that id exists
            (running, or closed when `join`).
    """
    if runtime is not None and not join:
        # Imported here: a caller with a runtime has the runtime's modules loaded already;
        # a client without one (the API process, a script) need not load them.
        from orchestrator.session.resolution import prepare_start

        start = await prepare_start(runtime, start)
    return await client.start_workflow(
        names.WORKFLOW_NAME,
        start,
        id=workflow_id_for(start.session_id),
        task_queue=task_queue,
        result_type=SessionResult,
        id_conflict_policy=(
            WorkflowIDConflictPolicy.USE_EXISTING if join else WorkflowIDConflictPolicy.UNSPECIFIED
        ),
        id_reuse_policy=(
            WorkflowIDReusePolicy.REJECT_DUPLICATE
            if join
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE
        ),
        memo=dict(memo) if memo else None,
        request_eager_start=not join,
    )


async def start_session(
    client: Client,
    plan: Plan,
    input: JsonObject,
    how: StartOptions | None = None,
    *,
    task_queue: str,
    budgets: Sequence[Budget] = (),
    store: Store | str | None = None,
    runtime: Runtime | None = None,
) -> WorkflowHandle[object, SessionResult]:
    """Start a session of `plan` as `how` says and return its workflow handle.

    `checked_start` then `launch` (with `runtime`, when the caller holds the worker's);
    see `checked_start` for the budgets and refusals.
    """
    start = await checked_start(plan, input, how, budgets=budgets, store=store)
    return await launch(client, start, task_queue=task_queue, runtime=runtime)


async def query_state(client: Client, session_id: str) -> SessionState:
    """The live state of a session, from its workflow."""
    handle = client.get_workflow_handle(workflow_id_for(session_id))
    state: SessionState = await handle.query(names.STATE_QUERY, result_type=SessionState)
    return state


async def decide_approval(
    client: Client,
    store: Store,
    approval_id: str,
    *,
    approve: bool,
    decided_by: str,
    reason: str | None = None,
    groups: Sequence[str] | None = None,
    arguments: JsonObject | None = None,
) -> ApprovalDecisionResult:
    """Approve or reject a pending request as the person `decided_by`.

    The decision carries the binding hash of the request as stored when it was shown, so
    the workflow refuses it if the action waiting is not that one. `groups` are the
    person's groups as an authenticating surface (API, inbox) knows them; the workflow
    refuses the decision unless the request's current group is among them. `arguments`
    replaces the call's arguments when approving (an approver's edit, already validated).

    Raises:
        ApprovalError: unknown id, already decided otherwise, a mismatched binding, or a
            rejection without a reason.
    """
    record = await store.get_approval(approval_id)
    if record is None:
        raise ApprovalError(f"no approval request {approval_id!r}")
    if (
        record.status is not ApprovalStatus.PENDING
        and (record.status is ApprovalStatus.APPROVED) != approve
    ):
        raise ApprovalError(
            f"approval {approval_id} was already {record.status.value} by {record.decided_by}"
        )
    decision = ApprovalDecision(
        approval_id=approval_id,
        binding_hash=record.binding_hash,
        approve=approve,
        decided_by=decided_by,
        reason=reason,
        groups=None if groups is None else list(groups),
        arguments=arguments,
    )
    if record.status is ApprovalStatus.PENDING:
        result = await _send_decision(client, record.workflow_id, decision)
        if result.status in ("approved", "rejected") and not result.duplicate:
            await _store_decision(store, result, reason)
        return result
    # The same decision again (a double submit, a retry after an error). The store is not
    # proof that the workflow took it: the worker writes the decision while it takes the
    # update, and if it dies before that workflow task completes the update is gone while
    # the row says decided. So it goes to the workflow again, which answers a repeat as a
    # duplicate; a session that finished or moved on has nothing left to decide.
    try:
        return await _send_decision(client, record.workflow_id, decision)
    except ApprovalError:
        return ApprovalDecisionResult(
            approval_id=approval_id,
            status=record.status.value,
            decided_by=record.decided_by or decided_by,
            duplicate=True,
        )


async def _store_decision(store: Store, result: ApprovalDecisionResult, reason: str | None) -> None:
    """Write the decision the workflow took to the store, so the store shows it on return.

    `execute_update` returns once the workflow task that took the decision is saved, so
    the history holds it: the store may show it now, and "decided" means the same in the
    store and the session for whoever reads the store next (the inbox's redirect, the
    API's list). The workflow's own activity records it too, with its audit event; the
    store's conditional `UPDATE` lets only the first of the two write the row, so they
    never disagree. Until 2026-12-07 this polled the store every 5 ms until that activity
    had run: a few store reads per decision (about 0.8 ms of CPU each) instead of one write.
    """
    await store.decide_approval(
        result.approval_id,
        status=ApprovalStatus(result.status),
        decided_by=result.decided_by,
        reason=reason,
        decided_at=datetime.now(UTC),
    )


async def _send_decision(
    client: Client, workflow_id: str, decision: ApprovalDecision
) -> ApprovalDecisionResult:
    """The decision update, its refusals and an unreachable session as `ApprovalError`."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        result: ApprovalDecisionResult = await handle.execute_update(
            names.DECIDE_APPROVAL, decision, result_type=ApprovalDecisionResult
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        refused = from_failure(cause)
        if isinstance(refused, ApprovalError):
            raise refused from None  # the workflow's typed refusal, e.g. ApprovalBySelf
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ApprovalError(message) from None
    except RPCError as exc:
        raise ApprovalError(
            f"approval {decision.approval_id}: its session is not waiting: {exc}"
        ) from None
    return result
