"""Property tests: bad MCP tool calls are clear tool errors and start nothing.

The API process's `/mcp` endpoint is the project's skill server; here it is called by the
SDK's client in memory, over a real worker and dev server. Hypothesis draws arguments for
each skill (the valid example with fields dropped, retyped or added, values that look like
templates, huge and unicode values, random objects) that its contract refuses, and tool
names the project does not have. Each call is answered with an error naming the skill and
what is wrong, written to the audit trail as `invalid_arguments` (or `unknown_tool`), and no
session workflow exists for it: no skill ran. A valid call afterwards still works.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import mcp_types as types
import pytest
from _drawing import drawn
from conftest import REPO, Env
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError
from temporalio.service import RPCError

from orchestrator.exceptions import SkillArgumentsError
from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY, session_id_for
from orchestrator.mcp.server import STDIO_CLIENT, SkillServerDeps, skill_server
from orchestrator.service import workflow_id_for
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.records import EventKind
from orchestrator.types import JsonObject, JsonValue

REGISTRY = SkillRegistry.load_directory(REPO / "skills")
VALID: dict[str, JsonObject] = {
    "tickets.get": {"ticket_id": "T-1001"},
    "orders.get": {"order_id": "A-1001"},
    "payments.refund": {
        "order_id": "A-1001",
        "amount": 42.5,
        "currency": "EUR",
        "reason": "broken",
    },
    "deploys.rollback": {"service": "checkout", "deploy_id": "d-1", "reason": "bad deploy"},
}
ODD: list[JsonValue] = [
    None,
    -1,
    10**30,
    1e308,
    "",
    "x" * 50_000,
    "{{ input.amount }}",
    "${REPLAY_API_KEY}",
    "\u202e\u0000",
    "🎉",
    [],
    {"nested": {"deep": [1]}},
]


def _invalid(skill: str, arguments: JsonObject) -> bool:
    try:
        REGISTRY.resolve(skill).validate_arguments(arguments)
    except SkillArgumentsError:
        return True
    return False


@st.composite
def bad_calls(draw: st.DrawFn) -> tuple[str, JsonObject]:
    skill = draw(st.sampled_from(sorted(VALID)))
    arguments = copy.deepcopy(VALID[skill])
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "retype", "add"]))
        key = draw(st.sampled_from(sorted(arguments) or ["x"]))
        if action == "drop":
            arguments.pop(key, None)
        elif action == "retype":
            arguments[key] = copy.deepcopy(draw(st.sampled_from(ODD)))
        else:
            arguments[draw(st.text(min_size=1, max_size=12))] = draw(st.sampled_from(ODD))
    return skill, arguments


CALLS = bad_calls().filter(lambda call: _invalid(*call))


@pytest.fixture
async def deps(env_factory: Callable[[Path], Awaitable[Env]]) -> SkillServerDeps:
    env = await env_factory(REPO / "model_scripts" / "customer_refund.yaml")
    return SkillServerDeps(
        skills=env.runtime.skills,
        client=env.client,
        store=env.runtime.store,
        task_queue=env.settings.task_queue,
        poll_seconds=0.2,
    )


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_bad_tool_arguments_are_tool_errors_and_start_no_session(
    deps: SkillServerDeps,
) -> None:
    calls = drawn(CALLS, 60)
    assert len(calls) >= 30, "the filter refused most examples"
    unknown = drawn(
        st.text(min_size=1, max_size=30)
        .filter(lambda n: n not in REGISTRY.names() and n != "session-result")
        .map(lambda n: (n, {})),
        15,
    )
    async with Client(skill_server(deps)) as client:
        for index, (skill, arguments) in enumerate(calls):
            meta: types.RequestParamsMeta = {IDEMPOTENCY_META_KEY: f"bad-{index}"}  # type: ignore[typeddict-unknown-key]
            result = await client.call_tool(skill, arguments, meta=meta)
            text = _text(result)
            assert result.is_error, (skill, arguments, text)
            assert re.match(rf"^invalid arguments for {re.escape(skill)}: \S", text), text
        for name, _ in unknown:
            with pytest.raises(MCPError, match="unknown tool"):
                await client.call_tool(name, {})
        ok = await client.call_tool("tickets.get", VALID["tickets.get"])
        assert not ok.is_error, _text(ok)

    # Each refused call is one audit event saying so, under a session that never ran.
    for index, (skill, _) in enumerate(calls):
        session_id = session_id_for(STDIO_CLIENT, skill, f"bad-{index}")
        events = await deps.store.list_events(session_id)
        assert [(e.kind, e.payload["outcome"]) for e in events] == [
            (EventKind.MCP_CALL, "invalid_arguments")
        ]
        with pytest.raises(RPCError, match="not found"):
            await deps.client.get_workflow_handle(workflow_id_for(session_id)).describe()
    # The one valid call is the only session the store knows.
    assert [s.plan_name for s in await deps.store.list_sessions(limit=1000)] == ["mcp-call"]
