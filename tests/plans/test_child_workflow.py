"""A plain Temporal workflow runs the agent session as its child (examples/child_workflow.py).

The user's workflow and activity run on one worker with `OrchestratorPlugin`; the refund
plan's gated call is approved the way a person would, and the parent files its report.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.worker import Worker

# The sandbox re-imports this module for the test's workflow: use the host's copies.
with workflow.unsafe.imports_passed_through():
    import pytest
    from conftest import REPO

    # The repository root is on sys.path through the editable install.
    from examples.child_workflow import RefundCase, example_worker, run_case, session_id_of
    from orchestrator import flow
    from orchestrator.child import INVALID_INPUT, AgentSessionRequest, agent_session
    from orchestrator.plans.loader import load_plan
    from orchestrator.plugin import OrchestratorPlugin
    from orchestrator.runtime import Runtime
    from orchestrator.scripted_model import ScriptedModelServer
    from orchestrator.service import workflow_id_for
    from orchestrator.session.types import SessionResult
    from orchestrator.settings import Settings
    from orchestrator.store.records import SessionStatus


@pytest.fixture
async def runtime(
    settings: Settings, replay_factory: Callable[[Path], Awaitable[ScriptedModelServer]]
) -> AsyncIterator[Runtime]:
    await replay_factory(REPO / "model_scripts/customer_refund.yaml")
    opened = await Runtime.open(settings)
    yield opened
    await opened.close()


async def test_user_workflow_runs_the_refund_session_as_its_child(
    client: Client, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    outbox = tmp_path / "reports.jsonl"
    case = RefundCase(
        plan=load_plan(REPO / "workflows/customer_refund.yaml"),
        ticket_id="T-1001",
        outbox=str(outbox),
    )
    parent_id = f"parent-{uuid.uuid4().hex[:8]}"
    async with example_worker(client, runtime, settings.task_queue):
        report = await run_case(
            client,
            runtime,
            case,
            task_queue=settings.task_queue,
            approve_as="maria",
            workflow_id=parent_id,
        )

    session_id = session_id_of(parent_id)
    assert report.session_id == session_id
    assert report.status == "completed"
    assert report.reply.startswith("Dear Ana")
    assert report.models == ["demo-strong", "demo-fast"]
    assert report.tokens > 0
    assert report.cost_usd > 0
    assert [json.loads(line) for line in outbox.read_text().splitlines()] == [report.model_dump()]
    child = await client.get_workflow_handle(workflow_id_for(session_id)).describe()
    assert child.parent_id == parent_id
    record = await runtime.store.get_session(session_id)
    assert record is not None
    assert record.status is SessionStatus.COMPLETED
    approvals = await runtime.store.list_approvals(session_id=session_id)
    assert [(a.status.value, a.decided_by) for a in approvals] == [("approved", "maria")]


@workflow.defn(name="tests.BadChildInput")
class BadChildInput:
    """Asks for a session with input its plan refuses."""

    @workflow.run
    async def run(self, request: AgentSessionRequest) -> SessionResult:
        return await agent_session(request)


async def test_input_that_does_not_fit_the_plan_fails_the_parent_without_a_child(
    client: Client, runtime: Runtime, settings: Settings
) -> None:
    plan = flow.plan(
        "needs-ticket",
        flow.call_skill("ticket", "tickets.get", ticket_id="{{ input.ticket_id }}"),
        input_required=["ticket_id"],
    )
    request = AgentSessionRequest(plan=plan, input={"order": "A-1"}, session_id="never-started")
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[BadChildInput],
        plugins=[OrchestratorPlugin(runtime)],
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                BadChildInput.run,
                request,
                id=f"bad-{uuid.uuid4().hex[:8]}",
                task_queue=settings.task_queue,
            )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert not isinstance(cause, ChildWorkflowError)
    assert cause.type == INVALID_INPUT
    assert "'needs-ticket'" in cause.message
    assert "ticket_id: required by input_required" in cause.message
    assert await runtime.store.get_session("never-started") is None


def test_public_surface_of_the_child_helper() -> None:
    import orchestrator.child

    assert set(orchestrator.child.__all__) == {
        "INVALID_INPUT",
        "AgentSessionRequest",
        "agent_session",
        "start_agent_session",
    }
