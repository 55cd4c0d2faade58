"""`orchestrator api` serves the skill server at `/mcp` when the project has MCP clients."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest
from conftest import REPO, Env
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from process_helpers import process_env, serving

import orchestrator.mcp
from orchestrator.devserver import free_port


def test_public_api_is_exactly_exported() -> None:
    assert sorted(orchestrator.mcp.__all__) == [
        "IDEMPOTENCY_META_KEY",
        "McpClient",
        "McpClients",
        "RESULT_TOOL",
        "SkillHttpApp",
        "TokenVerifierForClients",
        "annotations_for",
        "call_durably",
        "skill_server",
        "streamable_http_app",
        "tool_for",
    ]


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


@contextlib.asynccontextmanager
async def _api(env: Env, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    clients = tmp_path / "mcp_clients.yaml"
    digest = hashlib.sha256(b"s3cret").hexdigest()
    clients.write_text(
        "clients:\n"
        f"  - {{id: ops-agent, token_sha256: {digest},"
        f" audience: 'http://127.0.0.1:{port}/mcp', skills: [tickets.get]}}\n"
    )
    env_vars = process_env(
        env.settings,
        ORCHESTRATOR_MCP_CLIENTS_FILE=str(clients),
        ORCHESTRATOR_LOG_FORMAT="json",
    )
    async with serving(env_vars, port):
        yield f"http://127.0.0.1:{port}/mcp"


async def test_api_process_serves_mcp_behind_tokens(env: Env, tmp_path: Path) -> None:
    async with _api(env, tmp_path) as url:
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(
                url,
                headers={"Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            )
            # RFC 9728: the 401 names the metadata URL; it answers, naming this endpoint.
            found = re.search(r'resource_metadata="([^"]+)"', anonymous.headers["www-authenticate"])
            assert found, anonymous.headers["www-authenticate"]
            metadata = await http.get(found.group(1))
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            told: list[str] = []

            async def progress(done: float, total: float | None, message: str | None) -> None:
                told.append(message or "")

            async with asyncio.timeout(60):
                result = await client.call_tool(
                    "tickets.get", {"ticket_id": "T-1001"}, progress_callback=progress
                )
    assert anonymous.status_code == 401
    assert metadata.status_code == 200, metadata.text
    assert metadata.json() == {
        "resource": url,
        "bearer_methods_supported": ["header"],
        "resource_name": "orchestrator skills",
    }
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["ticket_id"] == "T-1001"
    # The API process's event hub told the call its run's events, the last one first.
    session_id = (result.meta or {})["orchestrator/session_id"]
    assert told[0] == f"running tickets.get@1.1.0 as session {session_id}"
    assert told[-3:] == [
        "step call started",
        "step call completed",
        f"session {session_id} completed",
    ]
