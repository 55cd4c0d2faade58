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

from pydantic import Field
from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from orchestrator.exceptions import SessionInputError, failure_type, to_failure
from orchestrator.plans.models import Plan
from orchestrator.session import names
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions, build_start
from orchestrator.types import JsonObject

__all__ = ["INVALID_INPUT", "AgentSessionRequest", "agent_session", "start_agent_session"]

INVALID_INPUT = failure_type(SessionInputError)
"""Error type of the non-retryable failure raised when the input does not fit the plan."""


class AgentSessionRequest(StartOptions):
    """What a parent workflow asks of a child session: a plan, its input, and how.

    How is `StartOptions` (`session_id`, `requested_by`, `tenant`, `team`, ...). An
    empty `session_id` is a fresh one from the workflow's deterministic random source, so
    a replay derives the same id; an empty `requested_by` is `workflow:<parent id>`.
    """

    plan: Plan
    """The plan to run, as the parent has it: the child keeps this version for its life."""
    input: JsonObject = Field(default_factory=dict)
    """The plan's input; checked against `input_required` and `input_schema` first."""
    task_queue: str | None = None
    """Where the session runs. Default: the parent's task queue."""
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
    info = workflow.info()
    how = request.model_copy(
        update={"requested_by": request.requested_by or f"workflow:{info.workflow_id}"}
    )
    try:
        start = build_start(
            request.plan, request.input, how, fresh_id=lambda: workflow.uuid4().hex[:12]
        )
    except SessionInputError as exc:
        raise to_failure(exc) from None
    return await workflow.start_child_workflow(
        names.WORKFLOW_NAME,
        start,
        id=names.workflow_id_for(start.session_id),
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
