"""Run an agent session as a child of a plain Temporal workflow of your own.

For engineers who keep their own workflows and want an agent plan as one durable step of
them. Call these from inside `@workflow.run` (import this module through
`workflow.unsafe.imports_passed_through()`, like any non-workflow import); the worker
needs `OrchestratorPlugin` so the session workflow and its activities run beside yours:

```python
@workflow.defn
class RefundThenReport:
    @workflow.run
    async def run(self, request: RefundRequest) -> RefundReport:
        result = await agent_session(
            AgentSessionRequest(plan=request.plan, input={"ticket_id": request.ticket_id})
        )
        return RefundReport(status=result.status.value, reply=str(result.final_output))
```

The plan travels in the request (loading a file is I/O, which workflow code must not do):
load it outside and pass it in, or build it with `orchestrator.flow`, which is pure.
The child is an ordinary session: it keeps its plan version and skill versions, its
approvals are decided with `orchestrator approvals` or the API, and `orchestrator
sessions show ID` tells its story.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from orchestrator.exceptions import SessionInputError, failure_type, to_failure
from orchestrator.plans.models import Plan
from orchestrator.session import names
from orchestrator.session.types import SessionOptions, SessionResult, SessionStartInput
from orchestrator.types import JsonObject

__all__ = ["INVALID_INPUT", "AgentSessionRequest", "agent_session", "start_agent_session"]

INVALID_INPUT = failure_type(SessionInputError)
"""Error type of the non-retryable failure raised when the input does not fit the plan."""


class AgentSessionRequest(BaseModel):
    """What a parent workflow asks of a child session."""

    plan: Plan
    """The plan to run, as the parent has it: the child keeps this version for its life."""
    input: JsonObject = Field(default_factory=dict)
    """The plan's input; checked against `input_required` and `input_schema` first."""
    session_id: str | None = None
    """Session id (the child's workflow id is `session-<id>`). Default: a fresh one from
    the workflow's deterministic random source, so a replay derives the same id."""
    task_queue: str | None = None
    """Where the session runs. Default: the parent's task queue."""
    requested_by: str | None = None
    """Who asked, for the audit trail. Default: `workflow:<parent workflow id>`."""
    tenant: str = "default"
    team: str = "default"
    options: SessionOptions = Field(default_factory=SessionOptions)
    parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE
    """What happens to the session if the parent closes first (Temporal's policy)."""


async def start_agent_session(
    request: AgentSessionRequest,
) -> ChildWorkflowHandle[object, SessionResult]:
    """Start the session as a child workflow and return its handle (workflow code only).

    Raises:
        ApplicationError: non-retryable, a `SessionInputError`, when the input lacks a key
            the plan requires or breaks its `input_schema`; no child is started.
    """
    plan = request.plan
    faults = plan.input_faults(request.input)
    if faults:
        raise to_failure(
            SessionInputError(f"plan {plan.name!r}: input does not fit: {'; '.join(faults)}")
        )
    info = workflow.info()
    session_id = request.session_id or workflow.uuid4().hex[:12]
    return await workflow.start_child_workflow(
        names.WORKFLOW_NAME,
        SessionStartInput(
            session_id=session_id,
            plan=plan,
            input=request.input,
            requested_by=request.requested_by or f"workflow:{info.workflow_id}",
            options=request.options,
            tenant=request.tenant,
            team=request.team,
        ),
        id=names.workflow_id_for(session_id),
        task_queue=request.task_queue or info.task_queue,
        parent_close_policy=request.parent_close_policy,
        result_type=SessionResult,
    )


async def agent_session(request: AgentSessionRequest) -> SessionResult:
    """Run the session as a child workflow and return its result (workflow code only).

    A session that fails (a step error, a rejected gate that fails its step) raises
    `temporalio.exceptions.ChildWorkflowError` here, with the session's failure as cause.

    Raises:
        ApplicationError: the input does not fit the plan (see `start_agent_session`).
        temporalio.exceptions.ChildWorkflowError: the session failed.
    """
    handle = await start_agent_session(request)
    return await handle
