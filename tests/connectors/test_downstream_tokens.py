"""Our MCP clients' tokens never reach a connector's server: a call that comes in over
`/mcp` with a client's bearer token and goes out through an HTTP connector presents
only the connector's own token (from its environment variable) downstream."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
import yaml
from conftest import REPO, Env
from connector_fixtures import project_fixture, settings_fixture  # noqa: F401
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.connectors import load_connector, sync_connector
from orchestrator.devserver import free_port
from orchestrator.mcp.auth import McpClient, McpClients
from orchestrator.mcp.server import SkillServerDeps, skill_server
from orchestrator.mcp.transport import streamable_http_app
from orchestrator.plans.models import Plan, SkillStep
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import start_session
from orchestrator.store.records import EventKind, SessionStatus

CLIENT_TOKEN = "client-token-must-stay-here"
CONNECTOR_TOKEN = "connector-token-for-ledger"


class _Recorder:
    """ASGI middleware keeping the headers of every HTTP request the server receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def _ledger_server(port: int = 0) -> AsyncIterator[tuple[str, _Recorder]]:
    """A streamable-HTTP MCP server built with the SDK, recording request headers."""
    server = MCPServer("ledger")

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    def lookup(account: str) -> dict[str, str]:
        """Balance of an account."""
        return {"account": account, "balance": "10.00"}

    recorder = _Recorder(server.streamable_http_app(host="127.0.0.1"))
    async with server.session_manager.run(), LoopbackServer(recorder, port=port) as served:
        yield f"{served.url}/mcp", recorder


async def _sync_ledger(project: Path, url: str) -> None:
    """Declare the ledger connector (token from LEDGER_TOKEN) and pin its tool."""
    (project / "connectors").mkdir(exist_ok=True)
    (project / "connectors" / "ledger.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "ledger",
                "transport": "http",
                "url": url,
                "headers": {"X-Team": "support"},
                "bearer_token_env": "LEDGER_TOKEN",
                "trusted": True,
                "tools": [{"tool": "lookup"}],
            }
        )
    )
    await sync_connector(load_connector(project / "connectors" / "ledger.yaml"), project)


@contextlib.asynccontextmanager
async def _skill_server(env: Env) -> AsyncIterator[str]:
    """Our skill server over HTTP, with one client whose token is `CLIENT_TOKEN`."""
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"
    digest = hashlib.sha256(CLIENT_TOKEN.encode()).hexdigest()
    clients = McpClients(
        clients=[McpClient(id="agent", token_sha256=digest, audience=audience, skills=["*"])]
    )
    deps = SkillServerDeps(
        skills=env.runtime.skills,
        client=env.client,
        store=env.runtime.store,
        task_queue=env.settings.task_queue,
        poll_seconds=0.2,
    )
    app = streamable_http_app(skill_server(deps), clients, audience=audience, host="127.0.0.1")
    async with app.run(), LoopbackServer(app, port=port) as served:
        yield f"{served.url}/mcp"


async def test_downstream_server_sees_only_the_connectors_token(
    project: Path,
    env_factory: Callable[[Path], Awaitable[Env]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_TOKEN", CONNECTOR_TOKEN)
    async with _ledger_server() as (ledger_url, recorder):
        await _sync_ledger(project, ledger_url)
        env = await env_factory(REPO / "model_scripts" / "customer_refund.yaml")
        async with (
            _skill_server(env) as url,
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            with anyio.fail_after(90):
                result = await client.call_tool("ledger.lookup", {"account": "A-1"})
    assert not result.is_error, result.content
    assert result.structured_content == {"account": "A-1", "balance": "10.00"}

    assert len(recorder.requests) > 2  # the sync's and the call's requests
    for headers in recorder.requests:
        assert headers["authorization"] == f"Bearer {CONNECTOR_TOKEN}"
        assert headers["x-team"] == "support"
        assert all(CLIENT_TOKEN not in value for value in headers.values())

    # Both hops are in the audit trail: the client's call in, the connector's call out.
    session_id = str((result.meta or {})["orchestrator/session_id"])
    events = await env.runtime.store.list_events(session_id, kind=EventKind.MCP_CALL)
    hops = sorted(
        (e.payload["direction"], e.payload["client"], e.payload["tool"], e.payload["outcome"])
        for e in events
    )
    assert hops == [
        ("in", "agent", "ledger.lookup", "ok"),
        ("out", f"session:{session_id}", "lookup", "ok"),
    ]
    for event in events:
        assert CLIENT_TOKEN not in str(event.payload)
        assert CONNECTOR_TOKEN not in str(event.payload)


async def test_http_connector_call_works_after_its_server_restarts(
    project: Path,
    env_factory: Callable[[Path], Awaitable[Env]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_TOKEN", CONNECTOR_TOKEN)
    port = free_port()
    plan = Plan(
        name="lookup",
        steps=[
            SkillStep(id="call", type="skill", skill="ledger.lookup", arguments={"account": "A-2"})
        ],
    )
    async with _ledger_server(port) as (url, _first):
        await _sync_ledger(project, url)
        env = await env_factory(REPO / "model_scripts" / "customer_refund.yaml")
        handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
        with anyio.fail_after(90):
            before = await handle.result()
    # A new server process on the same address; the worker's pooled connection goes on.
    async with _ledger_server(port) as (_url, second):
        handle = await start_session(env.client, plan, {}, task_queue=env.settings.task_queue)
        with anyio.fail_after(90):
            after = await handle.result()
    assert before.status is after.status is SessionStatus.COMPLETED
    assert after.outputs["call"] == {"account": "A-2", "balance": "10.00"}
    assert len(second.requests) >= 2, "the restarted server answered the listing and the call"
    [event] = await env.runtime.store.list_events(after.session_id, kind=EventKind.MCP_CALL)
    assert (event.payload["outcome"], event.payload["attempt"]) == ("ok", 1)
