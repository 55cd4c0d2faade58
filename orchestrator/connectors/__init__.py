"""MCP connectors: tools of other MCP servers brought in as skills (the official SDK only).

A connector file (`connectors/<name>.yaml`) declares a server (stdio or streamable HTTP)
and the tools to bind; `orchestrator connectors sync` writes their contracts with the
tool's schemas, a risk from its annotations, and a pin of its definition; a call runs
through `McpSkill` over the worker's one pooled connection to the server
(`connector_pool`), refused while the server's definition differs from the pin.
"""

from orchestrator.connectors.binding import TOOL_CHANGED, McpSkill, bind_mcp
from orchestrator.connectors.client import connect, definition_hash
from orchestrator.connectors.models import BoundTool, Connector, load_connector, load_connectors
from orchestrator.connectors.pool import ConnectorPool, close_connector_pool, connector_pool
from orchestrator.connectors.sync import SyncedTool, risk_for, sync_connector

__all__ = [
    "TOOL_CHANGED",
    "BoundTool",
    "Connector",
    "ConnectorPool",
    "McpSkill",
    "SyncedTool",
    "bind_mcp",
    "close_connector_pool",
    "connect",
    "connector_pool",
    "definition_hash",
    "load_connector",
    "load_connectors",
    "risk_for",
    "sync_connector",
]
