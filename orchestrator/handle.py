"""A running session from Python: start it, read it, decide its approvals, follow it.

`start(...)` starts a session and returns a `SessionHandle`; `SessionHandle(client, store,
session_id)` attaches to one started anywhere else (the CLI, MCP, another process). The
handle is a thin layer over what the CLI and the API use (`orchestrator.service` for the
workflow, the store for approvals and events, `orchestrator.events` for the live stream),
so every rule the workflow enforces holds here too.

    how = StartOptions(tenant="acme", requested_by="maria")  # optional: whose, who asked
    handle = await start(client, store, plan, {"ticket_id": "T-1001"}, how, task_queue="q")
    async for item in handle.events():
        ...  # AuditEvent (durable, numbered by seq) or StreamDelta (model text as it streams)
    result = await handle.result()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from orchestrator.events.hub import Watch
from orchestrator.events.live import live_hub
from orchestrator.events.models import TERMINAL_KINDS, Dropped, StreamDelta
from orchestrator.exceptions import ApprovalError, SessionFailed, from_failure
from orchestrator.plans.loader import load_plan
from orchestrator.plans.models import Plan
from orchestrator.routing.policy import Budget
from orchestrator.service import checked_start, decide_approval, launch, query_state
from orchestrator.session.feedback import Feedback, give_feedback
from orchestrator.session.names import workflow_id_for
from orchestrator.session.types import (
    ApprovalDecisionResult,
    SessionResult,
    SessionState,
)
from orchestrator.session_start import StartOptions
from orchestrator.store.outcomes import OutcomeRecord
from orchestrator.store.records import ApprovalStatus, AuditEvent
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["SessionHandle", "start"]

IDLE_CHECK_S: Final = 5.0
"""Seconds without news after which `events()` asks Temporal whether the session still
runs (a workflow terminated from outside writes no last event)."""


class SessionHandle:
    """One session, by id: its state, approvals, result and live events.

    Args:
        client: Temporal, where the session's workflow runs.
        store: The store its worker writes (approvals and the durable events).
        session_id: The session's id (not its workflow id).
        state_dir: The project's state folder: on SQLite, where `events()` registers to
            receive deltas and durable-event notices from workers on this machine; None:
            durable events only, by the store's poll. On PostgreSQL both come by `NOTIFY`
            and this is not needed.
    """

    def __init__(
        self, client: Client, store: Store, session_id: str, *, state_dir: Path | None = None
    ) -> None:
        self.session_id = session_id
        self.client = client
        self.store = store
        self.state_dir = state_dir

    def __repr__(self) -> str:
        return f"SessionHandle({self.session_id!r})"

    @property
    def workflow_id(self) -> str:
        """The Temporal workflow id (for the Web UI and `temporal workflow ...`)."""
        return workflow_id_for(self.session_id)

    async def feedback(
        self,
        score: float,
        *,
        key: str,
        step_id: str | None = None,
        comment: str | None = None,
        given_by: str = "python",
    ) -> list[OutcomeRecord]:
        """Say how good the session's result was (1 good, 0 bad), for the router to learn.

        Credited to the deployment each agent step ended on (or the one of `step_id`); the
        same `key` again is a no-op (see `orchestrator.session.feedback`).

        Raises:
            FeedbackError: unknown session or step, or no model served it.
            OutcomeKeyConflict: `key` was used before for different feedback.
        """
        fb = Feedback(key=key, score=score, step_id=step_id, comment=comment)
        return await give_feedback(self.store, self.session_id, fb, given_by=given_by)

    async def state(self) -> SessionState:
        """The live state: current step, pinned model, pending approvals, tokens and cost."""
        return await query_state(self.client, self.session_id)

    async def result(self) -> SessionResult:
        """Wait for the session to end and return its result.

        Raises:
            SessionFailed: the session failed; the message names the step and why.
            temporalio.client.WorkflowFailureError: its workflow failed otherwise
                (terminated, cancelled, timed out).
        """
        handle = self.client.get_workflow_handle(self.workflow_id, result_type=SessionResult)
        try:
            result: SessionResult = await handle.result()
        except WorkflowFailureError as exc:
            failed = from_failure(exc)
            if isinstance(failed, SessionFailed):
                raise failed from exc
            raise
        return result

    async def approve(
        self,
        approval_id: str | None = None,
        *,
        by: str,
        reason: str | None = None,
        arguments: JsonObject | None = None,
    ) -> ApprovalDecisionResult:
        """Approve a pending request as the person `by`: `approval_id`, else the oldest.

        `arguments` approves a changed call instead (checked by the workflow's rules).

        Raises:
            ApprovalError: nothing pending, or the workflow refused the decision.
        """
        return await self._decide(approval_id, True, by, reason, arguments)

    async def reject(
        self, approval_id: str | None = None, *, by: str, reason: str
    ) -> ApprovalDecisionResult:
        """Reject a pending request as `by`, with the reason the model and audit will see.

        Raises:
            ApprovalError: nothing pending, no reason, or the workflow refused it.
        """
        return await self._decide(approval_id, False, by, reason, None)

    async def _decide(
        self,
        approval_id: str | None,
        approve: bool,
        by: str,
        reason: str | None,
        arguments: JsonObject | None,
    ) -> ApprovalDecisionResult:
        if approval_id is None:
            pending = await self.store.list_approvals(
                status=ApprovalStatus.PENDING, session_id=self.session_id
            )
            if not pending:
                raise ApprovalError(f"session {self.session_id} has no pending approval")
            approval_id = pending[0].approval_id
        return await decide_approval(
            self.client,
            self.store,
            approval_id,
            approve=approve,
            decided_by=by,
            reason=reason,
            arguments=arguments,
        )

    async def events(
        self, *, after: int = 0, deltas: bool = True
    ) -> AsyncIterator[AuditEvent | StreamDelta]:
        """The session's events from after `seq` `after`, live, until the session ends.

        Durable events (`AuditEvent`) come each once, in `seq` order, however long the
        iteration takes: to resume later, pass the last one's `seq` as `after`. Deltas
        (`StreamDelta`, when `deltas`) are model text and tool-call arguments while they
        stream, best effort: a `kind="abandoned"` delta, or a later `attempt` of the same
        step and round, means the text before it is void. The iteration ends after the
        session's last event, or when its workflow has closed without one.
        """
        cursor = after
        async with live_hub(self.store, self.state_dir, deltas=deltas) as hub:
            while True:
                with hub.watch(self.session_id, after=cursor) as watch:
                    async for item in self._items(watch):
                        if isinstance(item, Dropped):
                            break  # fell behind on deltas: watch again from the cursor
                        if isinstance(item, AuditEvent):
                            cursor = item.seq or cursor
                        yield item
                        if isinstance(item, AuditEvent) and item.kind in TERMINAL_KINDS:
                            return
                    else:
                        return

    async def _items(self, watch: Watch) -> AsyncIterator[AuditEvent | StreamDelta | Dropped]:
        while True:
            item = await watch.next(IDLE_CHECK_S)
            if item is not None:
                yield item
                if isinstance(item, Dropped):
                    return
                continue
            if await self._closed():
                # One more read: the last events may have landed meanwhile.
                while (item := await watch.next(0)) is not None:
                    yield item
                return

    async def _closed(self) -> bool:
        try:
            description = await self.client.get_workflow_handle(self.workflow_id).describe()
        except RPCError:
            return False  # not started yet, or Temporal unreachable for now: keep waiting
        return description.status not in (None, WorkflowExecutionStatus.RUNNING)


async def start(
    client: Client,
    store: Store,
    plan: Plan | str | Path,
    input: JsonObject,
    how: StartOptions | None = None,
    *,
    task_queue: str,
    budgets: Sequence[Budget] = (),
    state_dir: Path | None = None,
) -> SessionHandle:
    """Start a session of `plan` (a `Plan` or a plan file's path) and return its handle.

    `how` says whose session it is and who asked (`StartOptions`: tenant, team,
    requested_by, session_id, ...). The input is checked against the plan first, and
    `budgets` (the models file's, e.g. `runtime.models.budgets`) against `store`, as
    `orchestrator run` checks them; a worker on `task_queue` runs it.

    Raises:
        PlanError: the plan file is invalid.
        SessionInputError: the input lacks or breaks what the plan requires.
        BudgetExceededError: a budget of the session's tenant/team cannot cover it.
    """
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    begun = await checked_start(plan, input, how, budgets=budgets, store=store)
    await launch(client, begun, task_queue=task_queue)
    return SessionHandle(client, store, begun.session_id, state_dir=state_dir)
