"""`orchestrator demo`: the refund escalation, end to end, on the embedded stack."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rich.console import Console

from orchestrator.cli.transcript import print_transcript
from orchestrator.exceptions import OrchestratorError
from orchestrator.plans.loader import load_plan
from orchestrator.service import decide_approval, start_session
from orchestrator.session_start import StartOptions
from orchestrator.settings import Settings
from orchestrator.stack import embedded_stack
from orchestrator.store.records import ApprovalStatus

__all__ = ["run_demo"]

DEMO_PLAN = "workflows/customer_refund.yaml"
DEMO_REPLAY = "model_scripts/customer_refund.yaml"


async def run_demo(
    settings: Settings,
    console: Console,
    *,
    approve_as: str | None,
    ticket_id: str = "T-1001",
    timeout: float = 120.0,
) -> int:
    """Run the demo plan; approve its refund as `approve_as`, or wait for a person.

    Returns:
        The process exit code: 0 when the session completed.
    """
    project = settings.project_dir
    plan = load_plan(project / DEMO_PLAN)
    with console.status("starting Temporal dev server, scripted model server and worker..."):
        stack_cm = embedded_stack(settings, model_script=project / DEMO_REPLAY)
        stack = await stack_cm.__aenter__()
    try:
        console.print(f"Temporal frontend  {stack.temporal_address}")
        console.print(f"Temporal Web UI    {stack.ui_url or '-'}")
        console.print(f"scripted model API   {stack.scripted_url}")
        console.print(f"store              {settings.resolved_database_url}\n")
        handle = await start_session(
            stack.client,
            plan,
            {"ticket_id": ticket_id},
            StartOptions(requested_by="demo"),
            task_queue=settings.task_queue,
            runtime=stack.runtime,  # its worker's: the setup is resolved at the start
        )
        session_id = handle.id.removeprefix("session-")
        console.print(f"started session {session_id} (workflow {handle.id})")
        store = stack.runtime.store
        deadline = time.monotonic() + timeout
        result_task = asyncio.ensure_future(handle.result())
        decided: set[str] = set()
        with console.status("running...") as status:
            while not result_task.done():
                for rec in await store.list_approvals(session_id=session_id):
                    if rec.status is not ApprovalStatus.PENDING or rec.approval_id in decided:
                        continue
                    args = json.dumps(rec.arguments, sort_keys=True)
                    if approve_as is None:
                        status.update(
                            f"waiting for approval {rec.approval_id}: {rec.skill} {args} -"
                            f" run `orchestrator approvals approve {rec.approval_id} --as NAME`"
                        )
                        continue
                    await decide_approval(
                        stack.client,
                        store,
                        rec.approval_id,
                        approve=True,
                        decided_by=approve_as,
                        reason="demo: approved non-interactively",
                    )
                    decided.add(rec.approval_id)
                if time.monotonic() > deadline:
                    raise OrchestratorError(f"demo session did not finish in {timeout:.0f}s")
                await asyncio.wait({result_task}, timeout=0.2)
        try:
            result_task.result()
        except Exception as exc:
            console.print(f"[red]session failed:[/] {exc}")
        record = await store.get_session(session_id)
        events = await store.list_events(session_id)
        assert record is not None
        print_transcript(console, record, events, stack.ui_url)
        return 0 if record.status.value == "completed" else 1
    finally:
        await stack_cm.__aexit__(None, None, None)


def demo_paths(project: Path) -> tuple[Path, Path]:
    """The demo's plan and model script in a project."""
    return project / DEMO_PLAN, project / DEMO_REPLAY
