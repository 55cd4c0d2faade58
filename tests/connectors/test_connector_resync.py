"""A re-sync reaches new sessions without a restart: the running worker and a real
`orchestrator mcp serve` process use the new contract version at once, while a session
that started before the re-sync keeps the version it pinned. Against `mcp-server-time`."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
import yaml
from conftest import REPO, Env
from connector_fixtures import innermost, project_fixture, settings_fixture  # noqa: F401
from mcp import Client
from temporalio.client import WorkflowFailureError
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.connectors import load_connector, sync_connector
from orchestrator.plans.models import ApprovalStep, Plan, SkillStep
from orchestrator.service import decide_approval, start_session
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.store.records import ApprovalRecord, EventKind, SessionStatus
from orchestrator.testing import eventually

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mcp"))
from serving import stdio_parameters  # `orchestrator mcp serve` on the test's server

PARIS = {"timezone": "Europe/Paris"}


def _time_connector(project: Path, zone: str) -> None:
    """`mcp-server-time` in `zone`: its tool's description names the zone, so a new zone
    is a changed tool definition."""
    (project / "connectors").mkdir(exist_ok=True)
    body = {
        "name": "time",
        "transport": "stdio",
        "command": "mcp-server-time",
        "args": ["--local-timezone", zone],
        "tools": [{"tool": "get_current_time", "skill": "time.now"}],
    }
    (project / "connectors" / "time.yaml").write_text(yaml.safe_dump(body))


async def _sync(project: Path) -> str:
    [synced] = await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    return synced.version


async def _versions_called(env: Env, session_id: str) -> list[tuple[object, object]]:
    """Version and outcome of each call the session made to the connector."""
    events = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    return [
        (e.payload["version"], e.payload["outcome"])
        for e in events
        if e.payload.get("direction") == "out"
    ]


async def _listed_version(client: Client) -> object:
    [tool] = [t for t in (await client.list_tools()).tools if t.name == "time.now"]
    return (tool.meta or {})["orchestrator/version"]


async def test_new_sessions_get_the_resynced_version_without_a_restart(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    _time_connector(project, "UTC")
    assert await _sync(project) == "1.0.0"
    env = await env_factory(REPO / "model_scripts" / "customer_refund.yaml")

    # A session that resolves time.now now (1.0.0) and calls it after an approval.
    gated = Plan(
        name="gated-time",
        steps=[
            ApprovalStep(id="ok", type="approval", summary="Read the clock?"),
            SkillStep(id="call", type="skill", skill="time.now", arguments=PARIS),
        ],
    )
    early_id = f"early-{uuid.uuid4().hex[:8]}"
    early = await start_session(
        env.client, gated, {}, StartOptions(session_id=early_id), task_queue=env.settings.task_queue
    )
    store = env.runtime.store

    async def waiting() -> list[ApprovalRecord] | None:
        return await store.list_approvals() or None

    [pending] = await eventually(waiting, what="the approval")

    async with Client(stdio_parameters(env, project)) as served:
        assert await _listed_version(served) == "1.0.0"

        _time_connector(project, "Asia/Tokyo")
        assert await _sync(project) == "2.0.0"

        # The same worker and the same `mcp serve` process, no restart.
        assert await _listed_version(served) == "2.0.0"
        with anyio.fail_after(90):
            answer = await served.call_tool("time.now", PARIS)
        assert not answer.is_error, answer.content
        assert (answer.meta or {})["orchestrator/version"] == "2.0.0"
        served_id = str((answer.meta or {})["orchestrator/session_id"])
        assert await _versions_called(env, served_id) == [("2.0.0", "ok")]

    plan = Plan(
        name="one-call",
        steps=[SkillStep(id="call", type="skill", skill="time.now", arguments=PARIS)],
    )
    direct_id = f"direct-{uuid.uuid4().hex[:8]}"
    handle = await start_session(
        env.client, plan, {}, StartOptions(session_id=direct_id), task_queue=env.settings.task_queue
    )
    async with asyncio.timeout(90):
        direct = await handle.result()
    assert isinstance(direct, SessionResult) and direct.status is SessionStatus.COMPLETED
    assert await _versions_called(env, direct_id) == [("2.0.0", "ok")]

    # The session that began before the re-sync calls the version it pinned: blocked.
    await decide_approval(env.client, store, pending.approval_id, approve=True, decided_by="ops")
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(90):
            await early.result()
    assert "time.now@1.0.0 is blocked" in innermost(failed.value)
    assert await _versions_called(env, early_id) == [("1.0.0", "blocked")]


def test_sync_says_running_processes_need_no_restart(project: Path) -> None:
    _time_connector(project, "UTC")
    first = CliRunner().invoke(app, ["connectors", "sync", "--project", str(project)])
    again = CliRunner().invoke(app, ["connectors", "sync", "--project", str(project)])
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert "new       time.now@1.0.0" in first.output
    assert "no restart needed" in " ".join(first.output.split())
    assert "unchanged time.now@1.0.0" in again.output and "restart" not in again.output
