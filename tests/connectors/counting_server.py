"""An MCP server built with the official SDK that counts every tool call it receives.

The connector tests run it as a stdio server (`python counting_server.py COUNTS_DIR`) or
serve `build(COUNTS_DIR)` over streamable HTTP on loopback. Each call appends a line to
`COUNTS_DIR/<tool>` before the tool does anything else, so a test reads how many times a
tool was really called, even by a process that died in the call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["build", "calls"]

ONCE = types.ToolAnnotations(idempotent_hint=False)
REPEATABLE = types.ToolAnnotations(idempotent_hint=True)
HOLD_SECONDS = 30
"""How long `hold` takes: well past the activity timeout its test gives the call."""


def calls(counts: Path, tool: str) -> int:
    """How many calls of `tool` the server received."""
    path = counts / tool
    return len(path.read_text().splitlines()) if path.exists() else 0


def _count(counts: Path, tool: str) -> int:
    with (counts / tool).open("a") as file:
        file.write("call\n")
    return calls(counts, tool)


def build(counts: Path) -> MCPServer:
    """The server: a tool that refuses, one that dies in the call, one that outlasts its
    caller's timeout, one that works."""
    server = MCPServer("counting")

    @server.tool(annotations=ONCE)
    def charge(account: str) -> dict[str, str]:
        """Charge an account (it answers that the account is over its quota)."""
        _count(counts, "charge")
        raise ToolError(f"quota exceeded for account {account}")

    @server.tool(annotations=ONCE)
    def transfer(account: str) -> dict[str, str]:
        """Move money (the server process dies once it has received the call)."""
        _count(counts, "transfer")
        os._exit(1)

    @server.tool(annotations=REPEATABLE)
    def lookup(account: str) -> dict[str, str]:
        """Read an account (the server dies on the first call, answers the next)."""
        if _count(counts, "lookup") == 1:
            os._exit(1)
        return {"account": account, "balance": "10.00"}

    @server.tool(annotations=ONCE)
    async def hold(account: str) -> dict[str, str]:
        """Book a payment (it takes longer than its caller waits: the attempt times out)."""
        _count(counts, "hold")
        await anyio.sleep(HOLD_SECONDS)
        return {"account": account, "booked": "yes"}

    @server.tool(annotations=ONCE)
    def stamp(text: str) -> dict[str, str]:
        """Stamp a text (works every time)."""
        return {"stamped": text, "call": str(_count(counts, "stamp"))}

    return server


if __name__ == "__main__":
    build(Path(sys.argv[1])).run("stdio")
