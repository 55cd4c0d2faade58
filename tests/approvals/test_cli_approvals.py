"""`orchestrator approvals` under the example approvers file, as real subprocesses.

The CLI checks the person like the API does: an approver in the file, in the request's
current group, the delegate once it is delegated; and it delegates within the group.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from _demo import DEMO_SCRIPT, waiting_refund
from conftest import REPO, Env

from orchestrator.approvals.people import load_approvers
from orchestrator.session.types import SessionResult
from orchestrator.store.records import ApprovalStatus, EventKind, SessionStatus

EXAMPLE = REPO / "approvers.example.yaml"


def test_the_example_approvers_file_loads_with_its_chain_and_two_person_rule() -> None:
    directory = load_approvers(EXAMPLE)
    assert directory.group_for_skill("payments.refund") == "finance"
    assert directory.group_for_skill(None) == "support-leads"
    assert directory.chain_after("support-leads") == ["finance", "ops"]
    assert directory.policy.two_person_risks == ("external_side_effect",)
    assert directory.policy.timeout_seconds == 3600
    assert all(u.password is None and not u.tokens for u in directory.users.values())


async def test_cli_decisions_check_the_group_and_the_delegate(
    env_factory: Callable[[Path], Awaitable[Env]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    approvers = tmp_path / "approvers.yaml"
    shutil.copy(EXAMPLE, approvers)
    monkeypatch.setenv("ORCHESTRATOR_APPROVERS_FILE", str(approvers))
    env = await env_factory(DEMO_SCRIPT)
    pending = await waiting_refund(env, "support-bot")
    apr = pending.approval_id

    async def run(*args: str) -> tuple[int, str]:
        settings = env.settings
        variables = os.environ | {
            "ORCHESTRATOR_PROJECT_DIR": str(settings.project_dir),
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address or "",
            "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
            "COLUMNS": "200",
        }
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "orchestrator", "approvals", *args),
            env=variables,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    code, out = await run("approve", apr, "--as", "nobody")
    assert code == 1 and "--as nobody: not an approver" in out
    code, out = await run("approve", apr, "--as", "ana")
    assert code == 1 and "ana is not in the group that decides this request (finance)" in out
    code, out = await run("delegate", apr, "--as", "lee", "--to", "ode")
    assert code == 1 and "ode is not in finance" in out
    record = await env.runtime.store.get_approval(apr)
    assert record is not None and record.status is ApprovalStatus.PENDING

    code, out = await run("delegate", apr, "--as", "lee", "--to", "kim", "--reason", "on call")
    assert code == 0 and f"{apr}: delegated to kim (finance)" in out, out
    code, out = await run("approve", apr, "--as", "lee")
    assert code == 1 and "delegated to kim" in out
    code, out = await run("approve", apr, "--as", "kim", "--reason", "order checked")
    assert code == 0 and f"{apr}: approved by kim" in out, out

    handle = env.client.get_workflow_handle(pending.workflow_id, result_type=SessionResult)
    assert (await handle.result()).status is SessionStatus.COMPLETED
    kinds = [e.kind for e in await env.runtime.store.list_events(pending.session_id)]
    assert EventKind.APPROVAL_DELEGATED in kinds
