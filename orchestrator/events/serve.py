"""The session routes of the API process, put together from the project's settings."""

from __future__ import annotations

from starlette.routing import Route

from orchestrator.approvals.people import approvers_file
from orchestrator.approvals.reloading import ReloadingApprovers
from orchestrator.client import lazy_connect
from orchestrator.events.api import session_routes
from orchestrator.events.hub import EventHub
from orchestrator.settings import Settings

__all__ = ["session_routes_for"]


def session_routes_for(settings: Settings, hub: EventHub) -> list[Route]:
    """`/api/sessions/...` of a project over the process's hub (`live_hub`).

    Tokens come from the approvers file, re-read when it changes (`ReloadingApprovers`).

    Raises:
        ConfigError: the approvers file is malformed.
    """
    directory = ReloadingApprovers(approvers_file(settings.project_dir))
    return session_routes(hub, directory, lazy_connect(settings))
