"""The skill server's `/mcp` route in the API process, when the project has MCP clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.routing import BaseRoute, Route

from orchestrator.client import connect
from orchestrator.events.hub import EventHub
from orchestrator.logs import get_logger
from orchestrator.mcp.auth import McpClients
from orchestrator.mcp.server import SkillServerDeps, skill_server
from orchestrator.mcp.transport import streamable_http_app
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.store import Store

__all__ = ["mcp_routes"]

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def mcp_routes(
    settings: Settings, store: Store, events: EventHub, *, host: str, port: int
) -> AsyncIterator[list[BaseRoute]]:
    """The `/mcp` route and its RFC 9728 metadata route while the block runs.

    The SDK's session manager runs with the block. `events` is the process's hub
    (`live_hub`), which tells waiting calls their sessions' events.

    Yields no route when the clients file does not exist: an MCP endpoint nobody may call
    is not served at all.

    Raises:
        ConfigError: the clients file is malformed.
    """
    path = settings.mcp_clients_file or settings.project_dir / "mcp_clients.yaml"
    if not path.exists():
        log.info("mcp endpoint off: no clients file", path=str(path))
        yield []
        return
    clients = McpClients.load(path)
    audience = settings.mcp_audience or f"http://{host}:{port}/mcp"
    deps = SkillServerDeps(
        skills=SkillRegistry.load_directory(settings.project_dir / "skills"),
        client=await connect(settings),
        store=store,
        task_queue=settings.task_queue,
        events=events,
    )
    app = streamable_http_app(skill_server(deps), clients, audience=audience, host=host)
    async with app.run():
        yield [Route(path, endpoint=app) for path in app.paths]
