"""The skill server: our skills as MCP tools, called by the SDK's client in memory, over
stdio (a real `orchestrator mcp serve` process) and over streamable HTTP with tokens."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from conftest import REPO, Env
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from orchestrator.mcp.auth import McpClient, McpClients
from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY
from orchestrator.mcp.server import FORBIDDEN, SkillServerDeps, skill_server, streamable_http_app
from orchestrator.replay import LoopbackServer
from orchestrator.service import decide_approval
from orchestrator.store.records import EventKind


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    """A worker for the example project (its replay script is never asked: no agent steps)."""
    return await env_factory(REPO / "replays" / "customer_refund.yaml")


@pytest.fixture
def deps(env: Env) -> SkillServerDeps:
    """The skill server over the test's worker, looking at waiting runs often."""
    return SkillServerDeps(
        skills=env.runtime.skills,
        client=env.client,
        store=env.runtime.store,
        task_queue=env.settings.task_queue,
        poll_seconds=0.2,
    )


REFUND = {"order_id": "O-5001", "amount": 42.5, "currency": "EUR", "reason": "damaged item"}


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_tools_carry_contract_schemas_and_risk_hints(deps: SkillServerDeps) -> None:
    async with Client(skill_server(deps)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"orders.get", "payments.refund", "tickets.get"} <= set(tools)
    assert set(tools) == set(deps.skills.names())
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
    assert "invalid arguments for tickets.get" in _text(result)


async def _call_with_decision(
    deps: SkillServerDeps, env: Env, *, approve: bool, key: str
) -> tuple[types.CallToolResult, list[str]]:
    """Call payments.refund, decide its approval when the first progress message arrives."""
    waiting = anyio.Event()
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
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
        [pending] = await env.runtime.store.list_approvals(status=None)
        await decide_approval(
            env.client,
            env.runtime.store,
            pending.approval_id,
            approve=approve,
            decided_by="maria",
            reason=None if approve else "not this order",
        )
    return box[0], messages


async def test_gated_skill_completes_after_approval(deps: SkillServerDeps, env: Env) -> None:
    result, messages = await _call_with_decision(deps, env, approve=True, key="refund-1")
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    assert "waiting for a person to approve payments.refund@1.0.0" in messages[0]
    session_id = str((result.meta or {})["orchestrator/session_id"])
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
    assert "rejected by maria" in _text(result)
    assert "not this order" in _text(result)


async def test_disconnected_client_run_goes_on_and_key_joins_it(
    deps: SkillServerDeps, env: Env
) -> None:
    waiting = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
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
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "issued"
    assert len(await env.runtime.store.list_approvals(status=None)) == 1


async def test_stdio_server_process_runs_a_skill(env: Env) -> None:
    settings = env.settings
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "orchestrator", "mcp", "serve"],
        env={
            "ORCHESTRATOR_PROJECT_DIR": str(REPO),
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address,
            "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
            "ORCHESTRATOR_LOG_FORMAT": "json",
        },
        cwd=str(REPO),
    )
    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        with anyio.fail_after(60):
            result = await client.call_tool("tickets.get", {"ticket_id": "T-1001"})
    assert "payments.refund" in names
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    assert result.structured_content["ticket_id"] == "T-1001"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextlib.asynccontextmanager
async def _serve_http(deps: SkillServerDeps) -> AsyncIterator[str]:
    """The skill server's streamable HTTP app on loopback, with three clients' tokens.

    A context manager inside the test, not a fixture: the SDK's session manager must be
    entered and left in one task.
    """
    async with LoopbackServer(_Placeholder(), host="127.0.0.1") as probe:
        port = probe.port
    audience = f"http://127.0.0.1:{port}/mcp"
    later = datetime.now(UTC) + timedelta(days=1)
    clients = McpClients(
        clients=[
            McpClient(
                id="support",
                token_sha256=_digest("good"),
                audience=audience,
                skills=["tickets.get"],
                expires_at=later,
            ),
            McpClient(
                id="elsewhere",
                token_sha256=_digest("other-aud"),
                audience="http://127.0.0.1:1/mcp",
                skills=["*"],
            ),
            McpClient(
                id="old",
                token_sha256=_digest("expired"),
                audience=audience,
                skills=["*"],
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            ),
        ]
    )
    server = skill_server(deps)
    app = streamable_http_app(server, clients, audience=audience, host="127.0.0.1")
    async with server.session_manager.run(), LoopbackServer(app, port=port) as served:
        yield f"{served.url}/mcp"


class _Placeholder:
    async def __call__(self, scope: object, receive: object, send: object) -> None:
        return None


@contextlib.asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@pytest.mark.parametrize("token", [None, "unknown", "other-aud", "expired"])
async def test_http_refuses_missing_unknown_foreign_and_expired_tokens(
    deps: SkillServerDeps, token: str | None
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with _serve_http(deps) as http_url, httpx2.AsyncClient() as http:
        response = await http.post(
            http_url,
            headers=headers,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "*" not in response.headers.get("access-control-allow-origin", "")


async def test_http_client_calls_in_scope_and_is_refused_out_of_scope(
    deps: SkillServerDeps, env: Env
) -> None:
    async with _serve_http(deps) as http_url, _client(http_url, "good") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        with anyio.fail_after(60):
            result = await client.call_tool("tickets.get", {"ticket_id": "T-1001"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("payments.refund", REFUND)
    assert names == {"tickets.get"}
    assert not result.is_error, _text(result)
    assert refused.value.code == FORBIDDEN
    assert "'support' is not allowed to call payments.refund" in refused.value.message
    session_id = str((result.meta or {})["orchestrator/session_id"])
    [event] = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    assert (event.payload["client"], event.payload["outcome"]) == ("support", "ok")


async def test_http_refuses_oversized_bodies(deps: SkillServerDeps) -> None:
    async with _serve_http(deps) as http_url, httpx2.AsyncClient() as http:
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
