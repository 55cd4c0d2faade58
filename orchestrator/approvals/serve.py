"""The approvals surfaces of the API process, put together from the project's settings."""

from __future__ import annotations

import os
import secrets

from starlette.routing import Route

from orchestrator.approvals.api import approval_routes
from orchestrator.approvals.inbox import inbox_routes
from orchestrator.approvals.people import approvers_file
from orchestrator.approvals.reloading import ReloadingApprovers
from orchestrator.client import lazy_connect
from orchestrator.events.hub import EventHub
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.store import Store

__all__ = ["routes_for"]


def routes_for(settings: Settings, store: Store, hub: EventHub | None = None) -> list[Route]:
    """The approvals API and inbox of a project: its `approvers.yaml`, Temporal on first use.

    The approvers file is re-read when it changes (`ReloadingApprovers`): people added
    to it may sign in and use their tokens without a restart.

    `hub` (the process's `live_hub`) keeps the inbox's queue page current.

    Inbox cookies are signed with `ORCHESTRATOR_INBOX_SECRET` (set it so sign-ins outlive
    a restart and work across API replicas), else with a random per-process key.

    Raises:
        ConfigError: the approvers file is malformed.
    """
    directory = ReloadingApprovers(approvers_file(settings.project_dir))
    client = lazy_connect(settings)

    secret = os.environ.get("ORCHESTRATOR_INBOX_SECRET", "").encode() or secrets.token_bytes(32)
    skills = SkillRegistry.load_directory(settings.project_dir / "skills")
    return [
        *approval_routes(store, directory, client, skills),
        *inbox_routes(store, directory, client, secret, skills, hub),
    ]
