"""`orchestrator run --detach` starts the session, prints its ids and returns at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import REPO, Env
from temporalio.client import WorkflowExecutionStatus
from test_cli import cli

from orchestrator.service import decide_approval, workflow_id_for
from orchestrator.session.types import SessionResult
from orchestrator.store.records import SessionStatus
from orchestrator.testing import wait_for_pending_approval

PLAN = """
name: detached
version: "1"
steps:
  - id: gate
    type: approval
    summary: "Close ticket {{ input.t }}?"
  - id: ticket
    type: skill
    skill: tickets.get
    arguments: {ticket_id: "{{ input.t }}"}
"""


async def test_detach_returns_while_the_session_waits(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path
) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    plan = tmp_path / "detached.yaml"
    plan.write_text(PLAN)

    done = await cli(env.settings, "run", str(plan), "-i", '{"t": "T-1001"}', "--detach")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("session ")
    session_id = lines[0].split()[1]
    workflow_id = workflow_id_for(session_id)
    assert lines[1:] == [
        f"workflow {workflow_id} on task queue {env.settings.task_queue!r}",
        f"follow it: orchestrator sessions show {session_id}",
        "pending approvals: orchestrator approvals list",
    ]
    # The command has returned; the session goes on without it and stops at the gate.
    pending = await wait_for_pending_approval(env.runtime.store, session_id, timeout=60)
    handle = env.client.get_workflow_handle(workflow_id, result_type=SessionResult)
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

    shown = await cli(env.settings, "sessions", "show", session_id)
    assert shown.returncode == 0, shown.stderr
    assert "detached" in shown.stdout

    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    ticket = result.outputs["ticket"]
    assert isinstance(ticket, dict)
    assert ticket["customer"] == "Ana Souza"
