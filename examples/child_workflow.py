"""A plain Temporal workflow that runs the refund agent session as its child.

`RefundThenReport` is the kind of workflow a team already has: it hands a ticket to the
refund plan (`workflows/customer_refund.yaml`) as a child session, waits for it (the
refund itself waits durably for a person's approval), then files a report of what the
agents did through an activity of its own. The session is an ordinary one: its approval is
decided with `orchestrator approvals approve`, and `orchestrator sessions show
<parent id>-refund` tells its story.

Run it on the embedded dev server with the scripted model server, approving as
`example-approver`:

    python examples/child_workflow.py T-1001
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

# The sandbox re-imports this module for each run; what it imports from here on is the
# host's already loaded copy (none of it is called by workflow code except the child helper).
with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from orchestrator.child import AgentSessionRequest, agent_session
    from orchestrator.plans.loader import load_plan
    from orchestrator.plans.models import Plan
    from orchestrator.plugin import OrchestratorPlugin
    from orchestrator.runtime import Runtime
    from orchestrator.service import decide_approval
    from orchestrator.settings import Settings
    from orchestrator.stack import embedded_stack
    from orchestrator.testing import wait_for_pending_approval

__all__ = [
    "FileReportInput",
    "FiledReport",
    "RefundCase",
    "RefundReport",
    "RefundThenReport",
    "example_worker",
    "file_report",
    "main",
    "run_case",
    "session_id_of",
]


class RefundCase(BaseModel):
    """The parent workflow's input: the plan travels in it, since workflows do no I/O."""

    plan: Plan
    ticket_id: str
    outbox: str
    """A JSON-lines file the report is appended to."""


class RefundReport(BaseModel):
    """What the parent makes of the session's result."""

    ticket_id: str
    session_id: str
    status: str
    reply: str
    models: list[str]
    tokens: int
    cost_usd: float


class FileReportInput(BaseModel):
    """The report activity's input."""

    outbox: str
    report: RefundReport


class FiledReport(BaseModel):
    """Where the report went."""

    outbox: str
    line: int


def session_id_of(parent_workflow_id: str) -> str:
    """The child session's id, derived from the parent's so either finds the other."""
    return f"{parent_workflow_id}-refund"


@activity.defn(name="examples.file_report")
async def file_report(request: FileReportInput) -> FiledReport:
    """Append the report to the outbox: the I/O stays in an activity."""
    path = Path(request.outbox)
    with path.open("a", encoding="utf-8") as out:
        out.write(request.report.model_dump_json() + "\n")
    with path.open(encoding="utf-8") as lines:
        count = sum(1 for _ in lines)
    return FiledReport(outbox=str(path), line=count)


@workflow.defn(name="examples.RefundThenReport")
class RefundThenReport:
    """Resolve a refund ticket with the agent session, then file a report of it."""

    @workflow.run
    async def run(self, case: RefundCase) -> RefundReport:
        """Run the session as a child, wait for it, and report."""
        session_id = session_id_of(workflow.info().workflow_id)
        result = await agent_session(
            AgentSessionRequest(
                plan=case.plan, input={"ticket_id": case.ticket_id}, session_id=session_id
            )
        )
        report = RefundReport(
            ticket_id=case.ticket_id,
            session_id=result.session_id,
            status=result.status.value,
            reply=str(result.final_output),
            models=[pin.model for pin in result.model_timeline],
            tokens=result.input_tokens + result.output_tokens,
            cost_usd=result.cost_usd,
        )
        await workflow.execute_activity(
            file_report,
            FileReportInput(outbox=case.outbox, report=report),
            start_to_close_timeout=timedelta(seconds=30),
        )
        return report


def example_worker(client: Client, runtime: Runtime, task_queue: str) -> Worker:
    """A worker running the user's workflow and activity beside the orchestrator's."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RefundThenReport],
        activities=[file_report],
        plugins=[OrchestratorPlugin(runtime)],
    )


async def run_case(
    client: Client,
    runtime: Runtime,
    case: RefundCase,
    *,
    task_queue: str,
    approve_as: str,
    workflow_id: str | None = None,
) -> RefundReport:
    """Start the parent workflow, approve the refund its session asks for, return the report."""
    workflow_id = workflow_id or f"refund-then-report-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        RefundThenReport.run, case, id=workflow_id, task_queue=task_queue
    )
    pending = await wait_for_pending_approval(
        runtime.store, session_id_of(workflow_id), timeout=120
    )
    await decide_approval(
        client, runtime.store, pending.approval_id, approve=True, decided_by=approve_as
    )
    return await handle.result()


async def main(ticket_id: str) -> None:
    """Run one case on the embedded stack of this repository's project."""
    repo = Path(__file__).resolve().parent.parent
    settings = Settings(project_dir=repo)
    async with embedded_stack(
        settings, model_script=repo / "model_scripts/customer_refund.yaml", worker=False
    ) as stack:
        case = RefundCase(
            plan=load_plan(repo / "workflows/customer_refund.yaml"),
            ticket_id=ticket_id,
            outbox=str(settings.resolved_state_dir / "refund_reports.jsonl"),
        )
        async with example_worker(stack.client, stack.runtime, settings.task_queue):
            report = await run_case(
                stack.client,
                stack.runtime,
                case,
                task_queue=settings.task_queue,
                approve_as="example-approver",
            )
    print(json.dumps(report.model_dump(), indent=2))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "T-1001"))
