"""What every part of the session workflow shares: its fields, activity calls and events.

The workflow is one class built from a chain of parts (`core` → `carry` →
`approval_gate` → `skill_calls` → `agent_loop` → `workflow`), each one module with one
job; this base declares the state they share and the bookkeeping they all use.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

from orchestrator.exceptions import PermanentError, failure_type
from orchestrator.session import names
from orchestrator.session.call_timeouts import model_call_options
from orchestrator.session.types import (
    Ack,
    ActivityOptions,
    ApprovalDecision,
    CallContext,
    Credit,
    FinishSessionInput,
    ModelCallResult,
    ModelSwitchRequest,
    PendingApproval,
    RecordEventsInput,
    SessionSetup,
    SessionStartInput,
    SessionState,
    SettleBudgetInput,
    WorkflowEvent,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject, JsonValue

__all__ = ["NON_RETRYABLE", "DeploymentDown", "SessionCore", "StepFailed"]

ResultT = TypeVar("ResultT", bound=BaseModel)

NON_RETRYABLE = [failure_type(PermanentError)]
"""The retry policies' non-retryable types (recorded in every scheduled activity)."""


class StepFailed(Exception):
    """A step cannot go on; the session ends as failed with this message."""


class DeploymentDown(Exception):
    """The pinned deployment failed hard inside a tool loop (after its retries)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class SessionCore:
    """The session's shared state and bookkeeping; the workflow class fills the fields."""

    _start: SessionStartInput
    _state: SessionState
    _skills: dict[str, SkillSpec]
    _tool_to_skill: dict[str, str]
    _models: set[str]
    _default_model: str
    _pending: dict[str, PendingApproval]
    _decisions: dict[str, ApprovalDecision]
    _switch: ModelSwitchRequest | None
    _outputs: dict[str, JsonValue]
    _events: list[WorkflowEvent]
    _routing: bool
    _batched: bool
    _after_approval: bool
    _route_name: str | None
    _routed: bool
    _failover: str
    _attempt: int
    _reuse: dict[str, str]
    _setup: SessionSetup | None
    _resumed_at: str | None
    _runs: int
    _task_type: str | None
    """The task type of the agent step running now (None before the first)."""

    def _snapshot(self) -> SessionState:
        """The live state with the pending approvals filled in (what the query returns)."""
        return self._state.model_copy(
            update={"pending_approvals": list(self._pending.values())}, deep=True
        )

    def _ctx(self, step_id: str | None = None) -> CallContext:
        info = workflow.info()
        return CallContext(
            session_id=self._start.session_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_id=step_id,
        )

    def _model_call_options(self, model: str) -> ActivityOptions:
        """The model-call activity's options for `model`, timed by its endpoint's timeout."""
        timeouts = self._setup.call_timeouts if self._setup is not None else {}
        return model_call_options(self._start.options.model_call, timeouts.get(model))

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
        credit: Credit | None = None,
    ) -> None:
        wf_id = workflow.info().workflow_id
        self._events.append(
            WorkflowEvent(
                key=f"{wf_id}:{step_id or '-'}:{key or kind.value}",
                kind=kind,
                step_id=step_id,
                model=model,
                payload=payload or {},
                credit=credit,
            )
        )

    def _credit(self) -> Credit | None:
        """Who an outcome of the running agent step is credited to (None outside one)."""
        model = self._state.pinned_model
        if model is None or self._task_type is None:
            return None
        return Credit(deployment=model, task_type=self._task_type, tenant=self._start.tenant)

    def _take_events(self) -> list[WorkflowEvent]:
        """The pending events, handed to an activity that writes them (and no longer here)."""
        events, self._events = self._events, []
        return events

    async def _flush(self) -> None:
        if not self._events:
            return
        events = self._take_events()
        await self._activity(
            names.RECORD_EVENTS,
            RecordEventsInput(ctx=self._ctx(), events=events, status=self._state.status),
            Ack,
            self._start.options.bookkeeping,
        )

    async def _finish(
        self, status: SessionStatus, *, output: JsonValue = None, error: str | None = None
    ) -> None:
        finish = FinishSessionInput(
            ctx=self._ctx(),
            status=status,
            output=output,
            error=error,
            input_tokens=self._state.input_tokens,
            output_tokens=self._state.output_tokens,
            cost_usd=self._state.cost_usd,
        )
        if self._batched:
            # One store activity closes the session: its last events, the session row and
            # the budget settlement (`bookkeeping-batch-v1`).
            finish.events, finish.settle_budget = self._take_events(), self._routing
            await self._activity(names.FINISH_SESSION, finish, Ack, self._start.options.bookkeeping)
            return
        await self._flush()
        await self._activity(names.FINISH_SESSION, finish, Ack, self._start.options.bookkeeping)
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
