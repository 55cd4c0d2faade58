"""HTTP sessions of the skill server: 256-bit random ids, each bound to the client
identity that opened it, and never taken as authentication."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
import pytest
from conftest import REPO, Env
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from serving import TOKENS, deps_for, serve_http

from orchestrator.mcp.transport import SESSION_ID_BYTES

VERSION = HANDSHAKE_PROTOCOL_VERSIONS[-1]
ACCEPT = "application/json, text/event-stream"


@pytest.fixture
async def env(env_factory: Callable[[Path], Awaitable[Env]]) -> Env:
    return await env_factory(REPO / "model_scripts" / "customer_refund.yaml")


def _headers(token: str | None, session: str | None = None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": VERSION}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session:
        headers[MCP_SESSION_ID_HEADER] = session
    return headers


async def _open_session(http: httpx2.AsyncClient, url: str, token: str) -> str:
    """Initialize a session as the client with `token`; its id."""
    opened = await http.post(
        url,
        headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        },
    )
    assert opened.status_code == 200, opened.text
    session = opened.headers[MCP_SESSION_ID_HEADER]
    initialized = await http.post(
        url,
        headers=_headers(token, session),
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
    )
    assert initialized.status_code == 202, initialized.text
    return session


def _list_tools() -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


async def test_session_ids_carry_256_random_bits(env: Env) -> None:
    async with serve_http(deps_for(env)) as url, httpx2.AsyncClient() as http:
        ids = [await _open_session(http, url, TOKENS["ops"]) for _ in range(3)]
    assert len(set(ids)) == 3
    for session in ids:
        raw = base64.urlsafe_b64decode(session + "=" * (-len(session) % 4))
        assert len(raw) == SESSION_ID_BYTES == 32  # the SDK's own uuid4 hex has 122 bits


async def test_a_session_answers_only_the_client_that_opened_it(env: Env) -> None:
    async with serve_http(deps_for(env)) as url, httpx2.AsyncClient() as http:
        session = await _open_session(http, url, TOKENS["support"])
        own = await http.post(url, headers=_headers(TOKENS["support"], session), json=_list_tools())
        other = await http.post(url, headers=_headers(TOKENS["ops"], session), json=_list_tools())
        anonymous = await http.post(url, headers=_headers(None, session), json=_list_tools())
        still_own = await http.post(
            url, headers=_headers(TOKENS["support"], session), json=_list_tools()
        )
    assert own.status_code == 200, own.text
    assert "tickets.get" in own.text
    # Another client's credential on this session: as if it did not exist.
    assert other.status_code == 404
    assert "payments.refund" not in other.text
    # A session id is never authentication: without a token, 401.
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")
    # The refused attempts did not end the session for its owner.
    assert still_own.status_code == 200
