"""The API process's approvals surfaces as `orchestrator api` wires them, on loopback.

`serve_api(project)` serves `routes_for(settings, store)` with `serve_http`, the same
calls the `api` command makes, over the project's `approvers.yaml` and a SQLite store.
Nothing here reaches Temporal: sign-in and listing need only the file and the store.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from orchestrator.approvals.serve import routes_for
from orchestrator.observability.server import serve_http
from orchestrator.settings import Settings
from orchestrator.store.store import Store

__all__ = ["login_csrf", "serve_api", "sign_in"]


@contextlib.asynccontextmanager
async def serve_api(project: Path) -> AsyncIterator[str]:
    """The API's approvals routes for `project`, served on loopback; yields the URL."""
    settings = Settings(project_dir=project, state_dir=project / ".orchestrator")
    async with await Store.open(settings.resolved_database_url) as store:
        routes = routes_for(settings, store)
        async with serve_http(store, host="127.0.0.1", port=0, required=True, routes=routes) as url:
            assert url is not None
            yield url


async def login_csrf(http: httpx.AsyncClient) -> str:
    """Open the sign-in form (setting its CSRF cookie); returns the form's token."""
    form = await http.get("/inbox/login")
    found = re.search(r'name=csrf value="([^"]+)"', form.text)
    assert found, form.text
    return found[1]


async def sign_in(
    http: httpx.AsyncClient, user: str, password: str, **headers: str
) -> httpx.Response:
    """Post the sign-in form as `user`."""
    csrf = await login_csrf(http)
    return await http.post(
        "/inbox/login",
        data={"csrf": csrf, "user": user, "password": password},
        headers=headers,
    )
