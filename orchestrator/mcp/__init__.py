"""MCP: the project's skills offered to other agents as MCP tools (the official SDK only).

`skill_server` builds the SDK's low-level `Server`; `orchestrator mcp serve` runs it over
stdio and the API process mounts its streamable HTTP app at `/mcp` (`streamable_http_app`),
behind bearer tokens (`McpClients`), with 256-bit session ids bound to the client that
opened them. A tool call starts, or joins by idempotency key, a durable session run of that
one skill (`call_durably`); the `session-result` tool (`RESULT_TOOL`) reads a run's result
later, for a client that left while a person decided.
"""

from orchestrator.mcp.auth import McpClient, McpClients, TokenVerifierForClients
from orchestrator.mcp.calls import IDEMPOTENCY_META_KEY, call_durably
from orchestrator.mcp.results import RESULT_TOOL
from orchestrator.mcp.server import skill_server
from orchestrator.mcp.tools import annotations_for, tool_for
from orchestrator.mcp.transport import SkillHttpApp, streamable_http_app

__all__ = [
    "IDEMPOTENCY_META_KEY",
    "RESULT_TOOL",
    "McpClient",
    "McpClients",
    "SkillHttpApp",
    "TokenVerifierForClients",
    "annotations_for",
    "call_durably",
    "skill_server",
    "streamable_http_app",
    "tool_for",
]
