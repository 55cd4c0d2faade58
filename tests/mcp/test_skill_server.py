"""The skill server: our skills as MCP tools, called by the SDK's client in memory, over
stdio (a real `orchestrator mcp serve` process) and over streamable HTTP with tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from conftest import REPO, Env
from mcp import Client
from mcp.shared.exceptions import MCPError
from serving import (
    REFUND,
    decide_the_approval,
    deps_for,
    http_client,
    serve_http,
    stdio_parameters,
    text_of,
)

from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY, session_id_for
from orchestrator.mcp.server import SkillServerDeps, skill_server
from orchestrator.service import decide_approval
from orchestrator.store.records import EventKind


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    """A worker for the example project (its model script is never asked: no agent steps)."""
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


@pytest.fixture
def deps(env: Env) -> SkillServerDeps:
    return deps_for(env)


async def test_tools_carry_contract_schemas_and_risk_hints(deps: SkillServerDeps) -> None:
    async with Client(skill_server(deps)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"orders.get", "payments.refund", "tickets.get"} <= set(tools)
    assert set(tools) == {*deps.skills.names(), "session-result"}
    refund = deps.skills.resolve("payments.refund").spec
    assert tools["payments.refund"].input_schema == refund.input_schema
    assert tools["payments.refund"].output_schema == refund.output_schema
    assert tools["payments.refund"].description == refund.description
    hints = tools["payments.refund"].annotations
    assert hints is not None
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (
        False,
        True,
        True,
    )
    ticket_hints = tools["tickets.get"].annotations
    assert ticket_hints is not None and ticket_hints.read_only_hint is True
    assert (tools["tickets.get"].meta or {})["orchestrator/version"] == "1.1.0"


async def test_invalid_arguments_are_a_tool_error(deps: SkillServerDeps) -> None:
    async with Client(skill_server(deps)) as client:
        result = await client.call_tool("tickets.get", {"ticket": "T-1001"})
    assert result.is_error
    assert "invalid arguments for tickets.get" in text_of(result)


async def _call_with_decision(
    deps: SkillServerDeps, env: Env, *, approve: bool, key: str
) -> tuple[types.CallToolResult, list[str]]:
    """Call payments.refund, decide its approval when the first progress message arrives."""
    waiting = anyio.Event()
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
        if "waiting for a person" in (message or ""):
            waiting.set()

    async with Client(skill_server(deps)) as client, anyio.create_task_group() as tg:
        box: list[types.CallToolResult] = []

        async def call() -> None:
            box.append(
                await client.call_tool(
                    "payments.refund",
                    REFUND,
                    progress_callback=on_progress,
                    meta={IDEMPOTENCY_META_KEY: key},
                )
            )

        tg.start_soon(call)
        with anyio.fail_after(60):
            await waiting.wait()
        await decide_the_approval(env, approve=approve)
    return box[0], messages


async def test_gated_skill_completes_after_approval(deps: SkillServerDeps, env: Env) -> None:
    result, messages = await _call_with_decision(deps, env, approve=True, key="refund-1")
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    session_id = str((result.meta or {})["orchestrator/session_id"])
    [approval] = await env.runtime.store.list_approvals(session_id=session_id, status=None)
    # Every event of the run's stream, once and in order (orchestrator.mcp.progress).
    assert messages == [
        f"running payments.refund@1.0.0 as session {session_id}",
        f"session {session_id} started",
        "step call started",
        f"session {session_id}: waiting for a person to approve payments.refund@1.0.0"
        f" (approval {approval.approval_id})",
        f"approval {approval.approval_id} approved by maria",
        "payments.refund ran",
        "step call completed",
        f"session {session_id} completed",
    ]
    [event] = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    assert event.payload["client"] == "stdio"
    assert (event.payload["tool"], event.payload["version"], event.payload["outcome"]) == (
        "payments.refund",
        "1.0.0",
        "ok",
    )


async def test_gated_skill_is_refused_after_rejection(deps: SkillServerDeps, env: Env) -> None:
    result, _ = await _call_with_decision(deps, env, approve=False, key="refund-2")
    assert result.is_error
    assert "rejected by maria" in text_of(result)
    assert "not this order" in text_of(result)


async def test_disconnected_client_run_goes_on_and_key_joins_it(
    deps: SkillServerDeps, env: Env
) -> None:
    waiting = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if "waiting for a person" in (message or ""):
            waiting.set()

    meta: types.RequestParamsMeta = {IDEMPOTENCY_META_KEY: "refund-3"}  # type: ignore[typeddict-unknown-key]
    async with Client(skill_server(deps)) as client, anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: client.call_tool(
                "payments.refund", REFUND, progress_callback=on_progress, meta=meta
            )
        )
        with anyio.fail_after(60):
            await waiting.wait()
        tg.cancel_scope.cancel()  # the client goes away while the run waits for a person
    [pending] = await env.runtime.store.list_approvals(status=None)
    await decide_approval(
        env.client, env.runtime.store, pending.approval_id, approve=True, decided_by="maria"
    )
    async with Client(skill_server(deps)) as client:
        with anyio.fail_after(60):
            result = await client.call_tool("payments.refund", REFUND, meta=meta)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    assert len(await env.runtime.store.list_approvals(status=None)) == 1


async def test_stdio_server_process_runs_a_skill(env: Env) -> None:
    async with Client(stdio_parameters(env)) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        with anyio.fail_after(60):
            result = await client.call_tool("tickets.get", {"ticket_id": "T-1001"})
    assert "payments.refund" in names
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["ticket_id"] == "T-1001"


@pytest.mark.parametrize("token", [None, "unknown", "other-aud", "expired"])
async def test_http_refuses_missing_unknown_foreign_and_expired_tokens(
    deps: SkillServerDeps, token: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with serve_http(deps) as http_url, httpx2.AsyncClient() as http:
        response = await http.post(
            http_url,
            headers=headers,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "*" not in response.headers.get("access-control-allow-origin", "")


async def test_http_client_calls_in_scope_and_a_hidden_skill_looks_unknown(
    deps: SkillServerDeps, env: Env
) -> None:
    meta: types.RequestParamsMeta = {IDEMPOTENCY_META_KEY: "refund-out-of-scope"}  # type: ignore[typeddict-unknown-key]
    async with serve_http(deps) as http_url, http_client(http_url, "good") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        with anyio.fail_after(60):
            result = await client.call_tool("tickets.get", {"ticket_id": "T-1001"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("payments.refund", REFUND, meta=meta)
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("no.such_tool", REFUND, meta=meta)
    assert names == {"tickets.get", "session-result"}
    assert not result.is_error, text_of(result)
    # Refused exactly as a name that does not exist: no code, message or version tells them apart.
    assert refused.value.code == unknown.value.code == types.INVALID_PARAMS
    hidden = refused.value.error.model_dump_json(by_alias=True)
    missing = unknown.value.error.model_dump_json(by_alias=True)
    assert "1.0.0" not in hidden
    assert hidden.replace("payments.refund", "NAME") == missing.replace("no.such_tool", "NAME")
    session_id = str((result.meta or {})["orchestrator/session_id"])
    [event] = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    assert (event.payload["client"], event.payload["outcome"]) == ("support", "ok")
    # The refused call is in the audit trail, under the session it would have had.
    refused_session = session_id_for("support", "payments.refund", "refund-out-of-scope")
    [row] = await env.runtime.store.list_events(refused_session, kind=EventKind.MCP_CALL)
    assert row.payload["outcome"] == "refused"
    assert (row.payload["client"], row.payload["tool"], row.payload["version"]) == (
        "support",
        "payments.refund",
        "1.0.0",
    )


async def test_http_refuses_oversized_bodies(deps: SkillServerDeps) -> None:
    async with serve_http(deps) as http_url, httpx2.AsyncClient() as http:
        response = await http.post(
            http_url,
            headers={
                "Authorization": "Bearer good",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
            content=b"[" + b"0," * (1024 * 1024) + b"0]",
        )
    assert response.status_code == 413
