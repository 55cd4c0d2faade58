"""A tool's own error is an answer, and a call that may have run is not repeated.

Against `counting_server.py`, an MCP server built with the official SDK that counts the
calls it receives: a tool answering `isError` is called once (a skill step fails with its
message; an agent step's model reads it and answers), a tool that is not idempotent is
not called again after its server died holding the call, an idempotent one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from conftest import Env
from connector_fixtures import innermost, project_fixture, settings_fixture  # noqa: F401
from counting_server import build, calls
from temporalio.client import WorkflowFailureError

from orchestrator.connectors import load_connector, sync_connector
from orchestrator.devserver import free_port
from orchestrator.plans.models import AgentStep, Plan, SkillStep
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import start_session
from orchestrator.session.types import SessionResult
from orchestrator.store.records import EventKind, SessionStatus

SERVER = Path(__file__).with_name("counting_server.py")

SCRIPT = {
    "conversations": [
        {
            "name": "ask",
            "match": {"contains": "Step: ask"},
            "turns": [
                {"tool_calls": [{"name": "counting_charge", "arguments": {"account": "A-1"}}]},
                {"content": "The charge was refused: the account is over its quota."},
            ],
        },
        {
            "name": "book",
            "match": {"contains": "Step: book"},
            "turns": [
                {"tool_calls": [{"name": "counting_hold", "arguments": {"account": "A-1"}}]},
                {"content": "Booking failed; I will try again."},
            ],
        },
    ]
}


@contextlib.asynccontextmanager
async def _http_server(counts: Path, port: int) -> AsyncIterator[None]:
    """The counting server over streamable HTTP on loopback (a fresh instance each time)."""
    server = build(counts)
    app = server.streamable_http_app(host="127.0.0.1")
    async with server.session_manager.run(), LoopbackServer(app, port=port):
        yield


async def counting_project(
    project: Path, *, http_port: int = 0, timeouts: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """The counting server as a synced stdio connector of `project`: the model script and
    the folder the server counts calls in.

    With `http_port`, also as an HTTP connector `stamps` (its `stamp` tool) on that port.
    `timeouts` sets skills' attempt timeouts in their synced contracts, as an operator may.
    """
    counts = project / "counts"
    counts.mkdir()
    (project / "connectors").mkdir()
    connectors: dict[str, dict[str, object]] = {
        "counting": {
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(SERVER), str(counts)],
            "tools": [{"tool": t} for t in ("charge", "transfer", "lookup", "hold")],
        }
    }
    if http_port:
        connectors["stamps"] = {
            "transport": "http",
            "url": f"http://127.0.0.1:{http_port}/mcp",
            "tools": [{"tool": "stamp"}],
        }
    async with contextlib.AsyncExitStack() as stack:
        if http_port:
            await stack.enter_async_context(_http_server(counts, http_port))
        for name, body in connectors.items():
            path = project / "connectors" / f"{name}.yaml"
            path.write_text(yaml.safe_dump({"name": name, **body}))
            await sync_connector(load_connector(path), project)
    for skill, timeout in (timeouts or {}).items():
        connector = skill.partition(".")[0]
        contract = project / "skills" / "mcp" / connector / f"{skill}@1.0.0.contract.yaml"
        body = yaml.safe_load(contract.read_text())
        body["timeout"] = timeout
        contract.write_text(yaml.safe_dump(body, sort_keys=False))
    script = project / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPT))
    return script, counts


async def _env(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]], *, http_port: int = 0
) -> tuple[Env, Path]:
    """A worker for a project with the counting server as a synced stdio connector."""
    script, counts = await counting_project(project, http_port=http_port)
    return await env_factory(script), counts


async def run_session(env: Env, plan: Plan) -> SessionResult:
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    async with asyncio.timeout(90):
        return await handle.result()


def one_call(skill: str) -> Plan:
    return Plan(
        name="one-call",
        steps=[SkillStep(id="call", type="skill", skill=skill, arguments={"account": "A-1"})],
    )


async def test_a_tool_error_fails_a_skill_step_after_one_call(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env, counts = await _env(project, env_factory)

    with pytest.raises(WorkflowFailureError) as failed:
        await run_session(env, one_call("counting.charge"))

    assert calls(counts, "charge") == 1
    assert (
        "counting.charge: tool 'charge' of MCP server counting answered with an error:"
        in innermost(failed.value)
    )
    assert "quota exceeded for account A-1" in innermost(failed.value)


async def test_an_agent_step_model_reads_the_tool_error_and_answers(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env, counts = await _env(project, env_factory)
    plan = Plan(
        name="ask",
        steps=[AgentStep(id="ask", goal="Charge account A-1", skills=["counting.charge"])],
    )

    result = await run_session(env, plan)

    assert result.status is SessionStatus.COMPLETED
    assert result.final_output == "The charge was refused: the account is over its quota."
    assert calls(counts, "charge") == 1
    told = env.replay.requests[-1].tool_results
    assert len(told) == 1
    assert "quota exceeded for account A-1" in told[0]
    [out] = await env.runtime.store.list_events(result.session_id, kind=EventKind.MCP_CALL)
    assert out.payload["outcome"] == "tool_error"


async def test_a_call_that_may_have_run_is_repeated_only_if_idempotent(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env, counts = await _env(project, env_factory)

    # The server dies holding the call: a transfer (not idempotent) is not sent again.
    with pytest.raises(WorkflowFailureError) as lost:
        await run_session(env, one_call("counting.transfer"))
    assert calls(counts, "transfer") == 1
    assert "may have run" in innermost(lost.value)

    # A lookup (idempotent) is: the next attempt reaches a restarted server.
    looked = await run_session(env, one_call("counting.lookup"))
    assert looked.status is SessionStatus.COMPLETED
    assert calls(counts, "lookup") == 2


async def test_a_server_refusing_connections_is_retried_even_for_a_call_made_once(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    port = free_port()
    env, counts = await _env(project, env_factory, http_port=port)

    plan = Plan(
        name="stamp",
        steps=[SkillStep(id="call", type="skill", skill="stamps.stamp", arguments={"text": "x"})],
    )
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    session_id = handle.id.removeprefix("session-")
    async with asyncio.timeout(60):
        # Nothing listens: the first attempt is refused before the call is sent.
        while not await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL):
            await asyncio.sleep(0.05)
        async with _http_server(counts, port):
            result = await handle.result()

    assert result.status is SessionStatus.COMPLETED
    assert calls(counts, "stamp") == 1
    rows = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    outcomes = [e.payload["outcome"] for e in rows]
    assert outcomes[0] == "failed"
    assert outcomes[-1] == "ok"
    assert outcomes.count("ok") == 1
