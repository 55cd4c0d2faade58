"""Connectors against MCP servers nobody here wrote: `mcp-server-time` (PyPI, stdio) and
`@modelcontextprotocol/server-everything` (npm, stdio and streamable HTTP), installed by
`make test`. Sync writes pinned contracts; sessions call the tools as skills; a changed
tool definition is blocked until it is re-synced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Env
from connector_fixtures import innermost, project_fixture, settings_fixture  # noqa: F401
from temporalio.client import WorkflowFailureError

import orchestrator.connectors
from orchestrator.chaos.checks import audit_problems
from orchestrator.connectors import load_connector, sync_connector
from orchestrator.connectors.pool import close_connector_pool
from orchestrator.devserver import free_port
from orchestrator.plans.models import Plan, SkillStep
from orchestrator.service import start_session
from orchestrator.session.types import SessionResult
from orchestrator.session_start import StartOptions
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import EventKind, SessionStatus

EVERYTHING = REPO / ".cache/npm/node_modules/@modelcontextprotocol/server-everything"
EVERYTHING_JS = EVERYTHING / "dist" / "index.js"

needs_everything = pytest.mark.skipif(
    not EVERYTHING_JS.exists() and os.environ.get("CI") != "true",
    reason="server-everything not installed (make test installs it into .cache/npm)",
)


def _write_connector(project: Path, name: str, body: dict[str, object]) -> None:
    (project / "connectors").mkdir(exist_ok=True)
    (project / "connectors" / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **body}))


def _time_connector(project: Path, *, zone: str = "UTC", trusted: bool = False) -> None:
    _write_connector(
        project,
        "time",
        {
            "transport": "stdio",
            "command": "mcp-server-time",
            "args": ["--local-timezone", zone],
            "trusted": trusted,
            "owner": "platform-team",
            "tools": [{"tool": "get_current_time", "skill": "time.now"}],
        },
    )


async def _run_skill(
    env: Env, skill: str, arguments: dict[str, object], *, session_id: str | None = None
) -> SessionResult:
    plan = Plan(
        name="one-call",
        steps=[SkillStep(id="call", type="skill", skill=skill, arguments=arguments)],
    )
    handle = await start_session(
        env.client,
        plan,
        {},
        StartOptions(session_id=session_id),
        task_queue=env.settings.task_queue,
    )
    async with asyncio.timeout(90):
        return await handle.result()


def _servers_running(name: str) -> list[int]:
    """Children of this process (the in-test worker) whose command line names `name`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and name.encode() in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_public_api_is_exactly_exported() -> None:
    assert sorted(orchestrator.connectors.__all__) == [
        "BoundTool",
        "Connector",
        "ConnectorPool",
        "McpSkill",
        "SyncedTool",
        "TOOL_CHANGED",
        "bind_mcp",
        "close_connector_pool",
        "connect",
        "connector_pool",
        "definition_hash",
        "load_connector",
        "load_connectors",
        "risk_for",
        "sync_connector",
    ]


async def test_sync_pins_the_tool_and_maps_hints_to_risk(project: Path) -> None:
    _time_connector(project)
    [synced] = await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    assert (synced.skill, synced.version, synced.change) == ("time.now", "1.0.0", "new")
    contract = yaml.safe_load(synced.path.read_text())
    assert contract["implementation"] == "mcp:time/get_current_time"
    # readOnlyHint from a server not marked trusted does not lower the operator's floor.
    assert contract["risk"] == "reversible_write"
    assert contract["idempotency"] == {"idempotent": True}
    assert len(contract["mcp"]["definition_sha256"]) == 64
    assert contract["mcp"]["input_schema"]["required"] == ["timezone"]
    spec = SkillRegistry.load_directory(project / "skills").get("time.now").spec
    assert spec.input_schema == contract["mcp"]["input_schema"]

    again = await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    assert [s.change for s in again] == ["unchanged"]

    synced.path.unlink()
    _time_connector(project, trusted=True)
    [trusted] = await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    assert yaml.safe_load(trusted.path.read_text())["risk"] == "read_only"


async def _synced_time_env(project: Path, env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    """A worker for a project whose time connector is synced."""
    _time_connector(project)
    await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


async def test_session_calls_the_tool_and_a_changed_definition_is_blocked(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env = await _synced_time_env(project, env_factory)

    ok = await _run_skill(env, "time.now", {"timezone": "Europe/Paris"})
    assert ok.status is SessionStatus.COMPLETED
    output = ok.outputs["call"]
    assert isinstance(output, dict)
    assert output["timezone"] == "Europe/Paris"
    assert len(_servers_running("mcp-server-time")) == 1, "the worker keeps one connection"
    [event] = await env.runtime.store.list_events(ok.session_id, kind=EventKind.MCP_CALL)
    assert event.payload == {
        "direction": "out",
        "client": f"session:{ok.session_id}",
        "connector": "time",
        "tool": "get_current_time",
        "version": "1.0.0",
        "outcome": "ok",
        "error": None,
        "call_id": "step",
        "attempt": 1,
        "sent": True,
    }

    # The server now describes the tool differently (its local zone is in the description).
    _time_connector(project, zone="Asia/Tokyo")
    blocked_id = f"blocked-{uuid.uuid4().hex[:8]}"
    with pytest.raises(WorkflowFailureError) as blocked:
        await _run_skill(env, "time.now", {"timezone": "Europe/Paris"}, session_id=blocked_id)
    assert (
        "time.now@1.0.0 is blocked: MCP server time changed the definition of tool"
        " 'get_current_time' since it was pinned" in innermost(blocked.value)
    )
    [refusal] = await env.runtime.store.list_events(blocked_id, kind=EventKind.MCP_CALL)
    assert (refusal.payload["outcome"], refusal.payload["version"]) == ("blocked", "1.0.0")
    assert "is blocked" in str(refusal.payload["error"])

    # The edited connector file got a new server; the old one was stopped.
    assert len(_servers_running("mcp-server-time")) == 1
    [resynced] = await sync_connector(load_connector(project / "connectors" / "time.yaml"), project)
    assert (resynced.version, resynced.change) == ("2.0.0", "changed")
    old = yaml.safe_load((resynced.path.parent / "time.now@1.0.0.contract.yaml").read_text())
    assert "changed get_current_time" in old["deprecated"]


async def test_every_connector_step_keeps_its_mcp_call_row(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env = await _synced_time_env(project, env_factory)
    zones = ["UTC", "Europe/Paris", "Asia/Tokyo"]
    plan = Plan(
        name="three-calls",
        steps=[
            SkillStep(id=f"t{n}", type="skill", skill="time.now", arguments={"timezone": zone})
            for n, zone in enumerate(zones)
        ],
    )
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    async with asyncio.timeout(90):
        result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    events = await env.runtime.store.list_events(result.session_id, kind=EventKind.MCP_CALL)
    assert [(e.step_id, e.payload["outcome"]) for e in events] == [
        ("t0", "ok"),
        ("t1", "ok"),
        ("t2", "ok"),
    ]
    assert len({e.event_key for e in events}) == 3
    # The crash harness's audit check sees each connector call matched by its call out.
    everything = await env.runtime.store.list_events(result.session_id)
    calls = [e for e in everything if e.kind is EventKind.TOOL_CALL]
    assert [e.payload["connector"] for e in calls] == ["time"] * 3
    assert audit_problems(everything, completed=True) == []


async def test_calls_share_one_server_process_which_is_restarted_after_it_dies(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env = await _synced_time_env(project, env_factory)

    zones = ("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York")
    # At once, before any connection exists: the first opens it, the others wait for it.
    results = await asyncio.gather(*(_run_skill(env, "time.now", {"timezone": z}) for z in zones))
    results.append(await _run_skill(env, "time.now", {"timezone": "UTC"}))
    assert [r.status for r in results] == [SessionStatus.COMPLETED] * 5
    [pid] = _servers_running("mcp-server-time")

    os.kill(pid, signal.SIGKILL)
    after = await _run_skill(env, "time.now", {"timezone": "Europe/Paris"})
    assert after.status is SessionStatus.COMPLETED
    [restarted] = _servers_running("mcp-server-time")
    assert restarted != pid
    # Reconnected inside the call (at its tool listing), not by a Temporal retry.
    [event] = await env.runtime.store.list_events(after.session_id, kind=EventKind.MCP_CALL)
    assert (event.payload["outcome"], event.payload["attempt"]) == ("ok", 1)

    await close_connector_pool()  # what Runtime.close does when a worker shuts down
    assert _servers_running("mcp-server-time") == []


@contextlib.asynccontextmanager
async def _everything_http() -> AsyncIterator[str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(EVERYTHING_JS),
        "streamableHttp",
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            line = ""
            while "listening on port" not in line.lower():
                line = (await proc.stderr.readline()).decode()
                assert line, "server-everything exited early"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 30)


@needs_everything
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_everything_server_echo_over_both_transports(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]], transport: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if transport == "stdio":
            body: dict[str, object] = {
                "transport": "stdio",
                "command": "node",
                "args": [str(EVERYTHING_JS), "stdio"],
            }
        else:
            url = await stack.enter_async_context(_everything_http())
            body = {"transport": "http", "url": url}
        _write_connector(project, "everything", {**body, "tools": [{"tool": "echo"}]})
        [synced] = await sync_connector(
            load_connector(project / "connectors" / "everything.yaml"), project
        )
        assert synced.skill == "everything.echo"
        env = await env_factory(REPO / "model_scripts" / "customer_refund.yaml")
        result = await _run_skill(env, "everything.echo", {"message": "hello"})
    assert result.status is SessionStatus.COMPLETED
    assert "hello" in str(result.outputs["call"])
