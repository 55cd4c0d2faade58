"""A tool's own error is an answer, and a call that may have run is not repeated.

Against `counting_server.py`, an MCP server built with the official SDK that counts the
calls it receives: a tool answering `isError` is called once (a skill step fails with its
message; an agent step's model reads it and answers), a tool that is not idempotent is
not called again after its server died holding the call, an idempotent one is.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from conftest import Env
from connector_fixtures import innermost, project_fixture, settings_fixture  # noqa: F401
from counting_server import calls
from temporalio.client import WorkflowFailureError

from orchestrator.connectors import load_connector, sync_connector
from orchestrator.plans.models import AgentStep, Plan, SkillStep
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
        }
    ]
}


async def _env(project: Path, env_factory: Callable[[Path], Awaitable[Env]]) -> tuple[Env, Path]:
    """A worker for a project with the counting server as a synced stdio connector."""
    counts = project / "counts"
    counts.mkdir()
    (project / "connectors").mkdir()
    (project / "connectors" / "counting.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "counting",
                "transport": "stdio",
                "command": sys.executable,
                "args": [str(SERVER), str(counts)],
                "tools": [{"tool": t} for t in ("charge", "transfer", "lookup")],
            }
        )
    )
    await sync_connector(load_connector(project / "connectors" / "counting.yaml"), project)
    script = project / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPT))
    return await env_factory(script), counts


async def _run(env: Env, plan: Plan) -> SessionResult:
    handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
    async with asyncio.timeout(90):
        return await handle.result()


def _step(skill: str) -> Plan:
    return Plan(
        name="one-call",
        steps=[SkillStep(id="call", type="skill", skill=skill, arguments={"account": "A-1"})],
    )


async def test_a_tool_error_fails_a_skill_step_after_one_call(
    project: Path, env_factory: Callable[[Path], Awaitable[Env]]
) -> None:
    env, counts = await _env(project, env_factory)

    with pytest.raises(WorkflowFailureError) as failed:
        await _run(env, _step("counting.charge"))

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

    result = await _run(env, plan)

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
        await _run(env, _step("counting.transfer"))
    assert calls(counts, "transfer") == 1
    assert "may have run" in innermost(lost.value)

    # A lookup (idempotent) is: the next attempt reaches a restarted server.
    looked = await _run(env, _step("counting.lookup"))
    assert looked.status is SessionStatus.COMPLETED
    assert calls(counts, "lookup") == 2
