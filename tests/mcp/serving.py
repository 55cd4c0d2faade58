"""Helpers of the MCP tests: the skill server over the real stdio and HTTP transports.

Context managers used inside tests, not fixtures: the SDK's session manager and clients
must be entered and left in one task.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import mcp_types as types
from conftest import REPO, Env
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from orchestrator.devserver import free_port
from orchestrator.mcp.auth import McpClient, McpClients
from orchestrator.mcp.server import SkillServerDeps, skill_server
from orchestrator.mcp.transport import streamable_http_app
from orchestrator.scripted_model import LoopbackServer
from orchestrator.service import decide_approval

REFUND = {"order_id": "O-5001", "amount": 42.5, "currency": "EUR", "reason": "damaged item"}
TOKENS = {"support": "good", "ops": "ops-token"}
"""Bearer tokens of the clients `serve_http` knows, by client identity."""


def deps_for(env: Env) -> SkillServerDeps:
    """The skill server over the test's worker, looking at waiting runs often."""
    return SkillServerDeps(
        skills=env.runtime.skills,
        client=env.client,
        store=env.runtime.store,
        task_queue=env.settings.task_queue,
        poll_seconds=0.2,
    )


def text_of(result: types.CallToolResult) -> str:
    """The text content of a tool result, joined."""
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def digest(token: str) -> str:
    """The SHA-256 a clients file holds for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@contextlib.asynccontextmanager
async def serve_http(deps: SkillServerDeps) -> AsyncIterator[str]:
    """The skill server's streamable HTTP app on loopback; yields its `/mcp` URL.

    Clients: `support` (token `good`, tickets.get only), `ops` (token `ops-token`, every
    skill), `elsewhere` (issued for another audience) and `old` (expired).
    """
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"
    later = datetime.now(UTC) + timedelta(days=1)
    clients = McpClients(
        clients=[
            McpClient(
                id="support",
                token_sha256=digest(TOKENS["support"]),
                audience=audience,
                skills=["tickets.get"],
                expires_at=later,
            ),
            McpClient(
                id="ops", token_sha256=digest(TOKENS["ops"]), audience=audience, skills=["*"]
            ),
            McpClient(
                id="elsewhere",
                token_sha256=digest("other-aud"),
                audience="http://127.0.0.1:1/mcp",
                skills=["*"],
            ),
            McpClient(
                id="old",
                token_sha256=digest("expired"),
                audience=audience,
                skills=["*"],
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            ),
        ]
    )
    app = streamable_http_app(skill_server(deps), clients, audience=audience, host="127.0.0.1")
    async with app.run(), LoopbackServer(app, port=port) as served:
        yield f"{served.url}/mcp"


@contextlib.asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[Client]:
    """An SDK client over streamable HTTP presenting `token`."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def stdio_parameters(env: Env, project: Path = REPO) -> StdioServerParameters:
    """`orchestrator mcp serve` for `project`, on the test's Temporal, state and queue."""
    settings = env.settings
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "orchestrator", "mcp", "serve"],
        env={
            "ORCHESTRATOR_PROJECT_DIR": str(project),
            "ORCHESTRATOR_STATE_DIR": str(settings.resolved_state_dir),
            "ORCHESTRATOR_TEMPORAL_ADDRESS": settings.temporal_address,
            "ORCHESTRATOR_TASK_QUEUE": settings.task_queue,
            "ORCHESTRATOR_LOG_FORMAT": "json",
        },
        cwd=str(project),
    )


async def decide_the_approval(env: Env, *, approve: bool) -> None:
    """Decide the one approval request of the test as `maria` (a rejection with a reason)."""
    [pending] = await env.runtime.store.list_approvals()
    await decide_approval(
        env.client,
        env.runtime.store,
        pending.approval_id,
        approve=approve,
        decided_by="maria",
        reason=None if approve else "not this order",
    )
