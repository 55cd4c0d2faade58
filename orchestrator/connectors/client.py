"""Talking to a connector's server with the SDK's client: one connection per use.

Each use opens its own connection (a stdio server is started for it and stopped after),
so a server that died is simply started again by the next call and a worker never keeps
a process it is not using.
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

__all__ = ["connect", "definition_hash"]


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
        async with Client(connector.stdio_parameters(project_dir)) as client:
            yield client
        return
    assert connector.url is not None
    async with (
        httpx2.AsyncClient(headers=connector.http_headers()) as http,
        Client(streamable_http_client(connector.url, http_client=http)) as client,
    ):
        yield client
