"""What every part of the session workflow shares: its state, activity calls and events.

The workflow (`workflow.py`) is composed of parts, each one object with one job:
`Continuation` (carry.py), `ApprovalGate`, `SkillCalls`, `ModelPins` (routing and pinning),
`ToolLoop` (agent steps) and `FanOut` (ensembles and sub-plans). Each gets this runtime:
the session's one state model (`SessionCarry`, what continue-as-new hands on) and the
bookkeeping they all use (activities, audit events, the finish).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from orchestrator.exceptions import PermanentError, failure_type
from orchestrator.plans.models import AgentStep
from orchestrator.session import names, patches
from orchestrator.session.call_timeouts import model_call_options
from orchestrator.session.last_call import LastCallEnd, ends_session
from orchestrator.session.types import (
    Ack,
    ActivityOptions,
    CallContext,
    Credit,
    FinishSessionInput,
    FirstRoute,
    ModelCallInput,
    ModelCallResult,
    RecordEventsInput,
    SessionCarry,
    SessionClosed,
    SessionClosing,
    SessionOpening,
    SessionSetup,
    SessionStartInput,
    SessionState,
    SettleBudgetInput,
    StepState,
    WorkflowEvent,
)
from orchestrator.skills.models import SkillSpec
from orchestrator.store.records import EventKind, SessionStatus
from orchestrator.types import JsonObject, JsonValue

__all__ = ["NON_RETRYABLE", "DeploymentDown", "SessionRuntime", "StepFailed", "fresh_memory"]

ResultT = TypeVar("ResultT", bound=BaseModel)

NON_RETRYABLE = (failure_type(PermanentError),)
"""The retry policies' non-retryable types (recorded in every scheduled activity)."""


class StepFailed(Exception):
    """A step cannot go on; the session ends as failed with this message."""


class DeploymentDown(Exception):
    """The pinned deployment failed hard inside a tool loop (after its retries)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def fresh_memory(start: SessionStartInput) -> SessionCarry:
    """The state a session starts with, or takes over from the run it continued from."""
    if start.carry is not None:
        memory = start.carry.model_copy(deep=True)
        memory.runs += 1
        return memory
    state = SessionState(
        session_id=start.session_id,
        plan_name=start.plan.name,
        plan_version=start.plan.version,
        steps=[StepState(id=s.id, type=s.type) for s in start.plan.steps],
    )
    return SessionCarry(state=state)


class SessionRuntime:
    """The session's state and the bookkeeping every part shares.

    `memory` is the one state model; everything else here lives for one run: the
    catalog the session resolved (skills, models), the events not yet written, which
    patched paths this run takes, and whose outcomes count now.
    """

    def __init__(self, start: SessionStartInput) -> None:
        self.start = start
        self.memory = fresh_memory(start)
        self.skills: dict[str, SkillSpec] = {}
        self.tool_to_skill: dict[str, str] = {}
        self.models: set[str] = set()
        self.default_model = ""
        self.events: list[WorkflowEvent] = []
        self.batched = False
        """Bookkeeping-batch-v1: pending events ride in the next model call or the finish.
        False when replaying a history recorded before it."""
        self.routing = False
        """Routing-v1: the router chooses at boundaries, and a dead deployment fails over.
        False when replaying a history recorded before it, which took the old path."""
        self.task_type: str | None = None
        """The task type of the agent step running now (None outside one)."""
        self.first_route: FirstRoute | None = None
        """The first step's routing decision taken by `start_session`, until routed."""
        self.opening: SessionOpening | None = None
        """The session row and its first event, until an activity writes them: set when
        the run took its setup from its start input (`patches.OPENING_GENERATION`)."""
        self.closed: SessionClosed | None = None
        """The session's end as the last model call wrote it (`patches.LAST_CALL_GENERATION`):
        the run then completes without `finish_session`."""

    @property
    def state(self) -> SessionState:
        """The live state the query shows (part of `memory`)."""
        return self.memory.state

    @property
    def outputs(self) -> dict[str, JsonValue]:
        """Outputs of the steps run so far, by step id (part of `memory`)."""
        return self.memory.outputs

    @property
    def setup(self) -> SessionSetup | None:
        """What the session resolved at its start (None before `start_session` answers)."""
        return self.memory.setup

    def take_setup(self, setup: SessionSetup) -> None:
        """Keep what the session resolved, and index its catalog.

        The first step's routing decision, when `start_session` took one, is kept apart
        for `ModelPins.route` (one use) and never carried over to a continued run.
        """
        if setup.first_route is not None:
            self.first_route = setup.first_route
            setup = setup.model_copy(update={"first_route": None})
        self.memory.setup = setup
        self.skills = {spec.name: spec for spec in setup.skills}
        self.tool_to_skill = {spec.tool_name: spec.name for spec in setup.skills}
        self.models = set(setup.models)
        self.default_model = setup.default_model

    def snapshot(self) -> SessionState:
        """A copy of the live state (what the query returns)."""
        return self.memory.state.model_copy(deep=True)

    def ctx(self, step_id: str | None = None) -> CallContext:
        """Who an activity call is for."""
        info = workflow.info()
        return CallContext(
            session_id=self.start.session_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step_id=step_id,
        )

    def closing(self, step: AgentStep) -> SessionClosing | None:
        """What a model call of `step` needs to close the session, or None.

        Set when a final answer from it would end the session
        (`patches.LAST_CALL_GENERATION`, `last_call.ends_session`).
        """
        setup = self.memory.setup
        if (
            setup is None
            or setup.generation < patches.LAST_CALL_GENERATION
            or not ends_session(self.start.plan, step)
        ):
            return None
        state = self.memory.state
        return SessionClosing(
            input_tokens=state.input_tokens,
            output_tokens=state.output_tokens,
            cost_usd=state.cost_usd,
            settle_budget=self.routing,
        )

    async def closed_by_call(self, ask: ModelCallInput) -> ModelCallResult | None:
        """The end a closing model call that failed for good wrote before it failed, or None.

        An attempt may have written the session's end and never reported it, and every
        later one failed too (the worker killed after the commit each time, the store
        unreachable for the retry's read, a cancel or a timeout): the session is then
        completed in the store, and failing the step would write a second end after it.
        One store read, asked only on this path (`patches.LAST_CALL_FAILURE_GENERATION`,
        or `LAST_CALL_FAILURE` for a session of generation 5); a read that fails for good
        leaves the failure as it was (the store refuses a second end).
        """
        setup = self.memory.setup
        if ask.closing is None or setup is None:
            return None
        if setup.generation < patches.LAST_CALL_FAILURE_GENERATION and not workflow.patched(
            patches.LAST_CALL_FAILURE
        ):
            return None
        check = ask.model_copy(update={"messages": [], "tools": [], "events": [], "opening": None})
        try:
            end = await self._run(
                names.CLOSED_BY_CALL, check, LastCallEnd, self.start.options.bookkeeping
            )
        except ActivityError:
            return None
        return end.result

    def model_call_options(self, model: str) -> ActivityOptions:
        """The model-call activity's options for `model`, timed by its endpoint's timeout."""
        setup = self.memory.setup
        timeouts = setup.call_timeouts if setup is not None else {}
        return model_call_options(self.start.options.model_call, timeouts.get(model))

    def account(self, result: ModelCallResult) -> None:
        """Add a model call's tokens and cost to the session's.

        A call that closed the session says what totals it wrote: they are the session's
        (the same sums, or what an earlier attempt wrote when a retry found it closed).
        """
        state = self.memory.state
        if result.closed is not None:
            self.closed = result.closed
            closed = result.closed
            state.input_tokens, state.output_tokens = closed.input_tokens, closed.output_tokens
            state.cost_usd = closed.cost_usd
            return
        usage = result.response.usage
        state.input_tokens += usage.input_tokens
        state.output_tokens += usage.output_tokens
        state.cost_usd += result.cost_usd

    def event(
        self,
        kind: EventKind,
        step_id: str | None,
        *,
        key: str | None = None,
        model: str | None = None,
        payload: JsonObject | None = None,
        credit: Credit | None = None,
    ) -> None:
        """Queue an audit event; the next flush (or model call, or finish) writes it."""
        wf_id = workflow.info().workflow_id
        self.events.append(
            WorkflowEvent(
                key=f"{wf_id}:{step_id or '-'}:{key or kind.value}",
                kind=kind,
                step_id=step_id,
                model=model,
                payload=payload or {},
                credit=credit,
            )
        )

    def credit(self) -> Credit | None:
        """Who an outcome of the running agent step is credited to (None outside one)."""
        model = self.memory.state.pinned_model
        if model is None or self.task_type is None:
            return None
        return Credit(deployment=model, task_type=self.task_type, tenant=self.start.tenant)

    def take_events(self) -> list[WorkflowEvent]:
        """The pending events, handed to an activity that writes them (and no longer here)."""
        events, self.events = self.events, []
        return events

    async def flush(self) -> None:
        """Write the pending events, if any."""
        if not self.events:
            return
        events = self.take_events()
        await self.activity(
            names.RECORD_EVENTS,
            RecordEventsInput(ctx=self.ctx(), events=events, status=self.memory.state.status),
            Ack,
            self.start.options.bookkeeping,
        )

    async def finish(
        self, status: SessionStatus, *, output: JsonValue = None, error: str | None = None
    ) -> None:
        """Close the session in the store: its last events, its row, its budget.

        Nothing to do when the last model call closed it and the only event pending is
        the last step's `step_completed`, which that call wrote
        (`patches.LAST_CALL_GENERATION`). Anything else goes to `finish_session`: events
        under keys already written with the same content are accepted, and a different
        one is refused (`EventKeyConflict`), never written twice.
        """
        if self._closed_by_last_call(status):
            self.take_events()
            return
        state = self.memory.state
        finish = FinishSessionInput(
            ctx=self.ctx(),
            status=status,
            output=output,
            error=error,
            input_tokens=state.input_tokens,
            output_tokens=state.output_tokens,
            cost_usd=state.cost_usd,
        )
        bookkeeping = self.start.options.bookkeeping
        if self.batched:
            # One store activity closes the session: its last events, the session row and
            # the budget settlement (`bookkeeping-batch-v1`).
            finish.events, finish.settle_budget = self.take_events(), self.routing
            await self.activity(names.FINISH_SESSION, finish, Ack, bookkeeping)
            return
        await self.flush()
        await self.activity(names.FINISH_SESSION, finish, Ack, bookkeeping)
        if self.routing:
            await self.activity(
                names.SETTLE_BUDGET, SettleBudgetInput(ctx=self.ctx()), Ack, bookkeeping
            )

    def _closed_by_last_call(self, status: SessionStatus) -> bool:
        """Whether the last model call wrote the session's end that `finish` would write."""
        if self.closed is None or status is not SessionStatus.COMPLETED:
            return False
        pending = self.events
        return len(pending) == 1 and pending[0].kind is EventKind.STEP_COMPLETED

    async def activity(
        self, name: str, arg: BaseModel, result_type: type[ResultT], opts: ActivityOptions
    ) -> ResultT:
        """Run an activity (local or regular, as `opts` say) with the session's retries.

        While the session's row is still unwritten (`opening`), the activity carries it
        when it writes events first (a model call, `record_events`); any other is preceded
        by a `record_events` that writes it: no activity of the session runs before its
        row and first event exist. An activity that carried it and failed may not have
        written it, so the next one carries it again (the write is idempotent).
        """
        opening, self.opening = self.opening, None
        if opening is None:
            return await self._run(name, arg, result_type, opts)
        if not isinstance(arg, ModelCallInput | RecordEventsInput):
            self.opening = opening
            empty = RecordEventsInput(ctx=self.ctx(), events=[], status=self.state.status)
            await self.activity(names.RECORD_EVENTS, empty, Ack, self.start.options.bookkeeping)
            return await self._run(name, arg, result_type, opts)
        try:
            return await self._run(
                name, arg.model_copy(update={"opening": opening}), result_type, opts
            )
        except BaseException:
            self.opening = opening
            raise

    async def _run(
        self, name: str, arg: BaseModel, result_type: type[ResultT], opts: ActivityOptions
    ) -> ResultT:
        """`activity`, once the session's row is taken care of."""
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
