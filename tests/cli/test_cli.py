"""The CLI as people use it: real subprocesses against the test's dev server and store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import REPO, Env

from orchestrator.devserver import free_port, port_in_use
from orchestrator.plans import load_plan
from orchestrator.service import start_session
from orchestrator.settings import Settings
from orchestrator.store.records import ApprovalStatus, SessionStatus
from orchestrator.testing import wait_for_pending_approval


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(settings.project_dir),
        "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
        "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address or "",
        "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
        "COLUMNS": "200",
    }


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        *args,
        env=cli_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def test_approvals_list_and_approve_from_the_cli(
    env_factory: Callable[[Path], Awaitable[Env]],
) -> None:
    env = await env_factory(REPO / "model_scripts/customer_refund.yaml")
    handle = await start_session(
        env.client,
        load_plan(REPO / "workflows/customer_refund.yaml"),
        {"ticket_id": "T-1001"},
        task_queue=env.settings.task_queue,
    )
    session_id = handle.id.removeprefix("session-")
    pending = await wait_for_pending_approval(env.runtime.store, session_id)

    listed = await cli(env.settings, "approvals", "list")
    assert listed.returncode == 0, listed.stderr
    assert pending.approval_id in listed.stdout
    assert "payments.refund@1.0.0" in listed.stdout

    missing_reason = await cli(
        env.settings, "approvals", "reject", pending.approval_id, "--as", "x"
    )
    assert missing_reason.returncode != 0
    assert "--reason" in missing_reason.stderr

    unknown = await cli(env.settings, "approvals", "approve", "apr_nope", "--as", "maria")
    assert unknown.returncode == 1
    assert "no approval request 'apr_nope'" in unknown.stderr

    approved = await cli(
        env.settings,
        "approvals",
        "approve",
        pending.approval_id,
        "--as",
        "maria",
        "--reason",
        "checked the order",
    )
    assert approved.returncode == 0, approved.stderr
    assert f"{pending.approval_id}: approved by maria" in approved.stdout
    result = await handle.result()
    assert result.status is SessionStatus.COMPLETED
    record = await env.runtime.store.get_approval(pending.approval_id)
    assert record is not None and record.status is ApprovalStatus.APPROVED
    assert record.decided_by == "maria" and record.reason == "checked the order"

    shown = await cli(env.settings, "sessions", "show", session_id)
    assert shown.returncode == 0, shown.stderr
    assert "maria" in shown.stdout and "checked the order" in shown.stdout
    assert "Model timeline" in shown.stdout and "demo-strong" in shown.stdout


async def test_validate_reports_file_line_and_column(tmp_path: Path, settings: Settings) -> None:
    good = await cli(settings, "validate", str(REPO / "workflows"))
    assert good.returncode == 0 and "customer-refund" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n  - id: a\n    type: agent\n    goal: g\n    max_rounds: -1\n"
    )
    result = await cli(settings, "validate", str(bad))
    assert result.returncode == 1
    assert "bad.yaml: line 6, column 17: steps.0.max_rounds" in result.stdout.replace("\n", "")


async def test_dev_starts_server_ui_and_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_PROJECT_DIR": str(REPO),
        "ORCHESTRATOR_STATE_DIR": str(tmp_path / "state"),
        "ORCHESTRATOR_DEV_SERVER_PORT": str(port),
        "ORCHESTRATOR_DEV_SERVER_UI_PORT": str(ui_port),
        "COLUMNS": "200",
    }
    env.pop("ORCHESTRATOR_TEMPORAL_ADDRESS", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "dev",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any("Ctrl-C" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "orchestrator dev exited early:\n" + "".join(lines)
                lines.append(line)
        text = "".join(lines)
        assert f"127.0.0.1:{port}" in text
        assert f"http://127.0.0.1:{ui_port}" in text
        assert "task queue 'orchestrator'" in text
        assert port_in_use("127.0.0.1", port) and port_in_use("127.0.0.1", ui_port)
        assert (tmp_path / "state" / "temporal.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0
    assert not port_in_use("127.0.0.1", port), "the dev server outlived orchestrator dev"
