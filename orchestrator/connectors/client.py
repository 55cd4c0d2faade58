"""Talking to a connector's server with the SDK's client.

`connect` opens one connection for the block (a stdio server is started for it and
stopped after): `orchestrator connectors sync` uses it once; calls from a worker share a
long-lived one from `orchestrator.connectors.pool`. The client's response cache is off,
so every tool listing is the server's current one: the pin check must see a change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from orchestrator.connectors.models import Connector

__all__ = ["connect", "definition_hash", "offered_tools"]

MAX_PAGES = 100
"""Most `tools/list` pages read from one server (a bound on a server that never ends)."""


def definition_hash(tool: types.Tool) -> str:
    """SHA-256 of what a model is shown of a tool: its name, description and input schema."""
    text = json.dumps(
        {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.asynccontextmanager
async def connect(connector: Connector, project_dir: Path) -> AsyncIterator[Client]:
    """An initialised SDK client of the connector's server, closed (and stopped) on exit."""
    if connector.transport == "stdio":
        async with Client(connector.stdio_parameters(project_dir), cache=None) as client:
            yield client
        return
    assert connector.url is not None
    async with (
        httpx2.AsyncClient(headers=connector.http_headers()) as http,
        Client(streamable_http_client(connector.url, http_client=http), cache=None) as client,
    ):
        yield client


async def offered_tools(client: Client) -> dict[str, types.Tool]:
    """Every tool the server offers now, by name, following `tools/list` pages."""
    tools: dict[str, types.Tool] = {}
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools.update((tool.name, tool) for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools
