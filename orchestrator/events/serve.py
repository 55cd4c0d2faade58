"""The session routes of the API process, put together from the project's settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.routing import Route

from orchestrator.approvals.people import approvers_file, load_approvers
from orchestrator.client import lazy_connect
from orchestrator.events.api import session_routes
from orchestrator.events.live import live_hub
from orchestrator.settings import Settings
from orchestrator.store.store import Store

__all__ = ["session_routes_for"]


@contextlib.asynccontextmanager
async def session_routes_for(settings: Settings, store: Store) -> AsyncIterator[list[Route]]:
    """`/api/sessions/...` of a project, live while the block runs.

    Raises:
        ConfigError: the approvers file is malformed.
    """
    directory = load_approvers(approvers_file(settings.project_dir))
    client = lazy_connect(settings)

    async with live_hub(store, settings.resolved_state_dir) as hub:
        yield session_routes(hub, directory, client)
