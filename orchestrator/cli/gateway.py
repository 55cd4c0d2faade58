"""`orchestrator gateway`: the OpenAI- and Anthropic-compatible model gateway."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import console, load_settings, run_async_served
from orchestrator.gateway.app import gateway_routes
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.serve import project_gateway
from orchestrator.gateway.server import AVAILABLE, gateway_server
from orchestrator.gateway.service import Gateway
from orchestrator.heap import settle_heap
from orchestrator.observability import health_app, serve_http
from orchestrator.store.store import Store

__all__ = ["app"]

app = typer.Typer(help="The model gateway: /v1 endpoints for agents built with any framework.")

Project = Annotated[Path | None, typer.Option("--project", "-p", help="Project folder.")]


@app.callback(invoke_without_command=True)
def gateway(
    ctx: typer.Context,
    project: Project = None,
    host: Annotated[str | None, typer.Option(help="Interface (default: the setting).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the setting).")] = None,
) -> None:
    """Serve the gateway (`orchestrator gateway`), or run one of its commands."""
    if ctx.invoked_subcommand is None:
        serve(project, host, port)


@run_async_served
async def serve(
    project: Project = None,
    host: Annotated[str | None, typer.Option(help="Interface (default: the setting).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the setting).")] = None,
) -> None:
    """Serve `/v1/chat/completions`, `/v1/messages`, `/v1/embeddings` and `/v1/models`.

    Keys come from the project's `gateway_keys.yaml` (or ORCHESTRATOR_GATEWAY_KEYS_FILE);
    pins, budgets and audit go to the project's store, shared with other processes.
    """
    settings = load_settings(project)
    config = GatewaySettings()
    bind_host = host or config.host
    bind_port = config.port if port is None else port
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    async with (
        await Store.open(settings.resolved_database_url) as store,
        project_gateway(settings, store, config) as gateway,
        _served(store, gateway, bind_host, bind_port) as url,
    ):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        settle_heap()
        console.print(f"gateway on {url}/v1 ({len(gateway.keys.keys)} keys)", highlight=False)
        await stop.wait()
        console.print("gateway stopping: finishing the requests in flight", highlight=False)


@contextlib.asynccontextmanager
async def _served(store: Store, gateway: Gateway, host: str, port: int) -> AsyncIterator[str]:
    """The gateway's routes at `/v1` beside the operator endpoints; yields the root URL.

    With `httptools` (the `fast` extra) the gateway's own HTTP/1.1 server serves them, the
    operator endpoints (/metrics, /healthz, /readyz) behind it; without, uvicorn and
    Starlette do.
    """
    if AVAILABLE:
        fallback = health_app(store)
        async with gateway_server(gateway, host=host, port=port, fallback=fallback) as server:
            yield server.url
        return
    # The routes at /v1 themselves, not a mounted app: one router and one middleware stack.
    routes = gateway_routes(gateway, prefix="/v1")
    async with serve_http(store, host=host, port=port, required=True, routes=routes) as url:
        assert url is not None
        yield url


@app.command("new-key")
def new_key(
    key_id: Annotated[str, typer.Argument(help="The key's id, e.g. support-bot.")],
    tenant: Annotated[str, typer.Option(help="Tenant the key spends for.")] = "default",
    team: Annotated[str, typer.Option(help="Team the key spends for.")] = "default",
) -> None:
    """Print a new token and the `gateway_keys.yaml` entry that holds its hash."""
    token = "sk-gw-" + secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    typer.echo(f"# token (shown once, give it to the client): {token}")
    typer.echo(
        f"  - id: {key_id}\n    token_sha256: {digest}\n    tenant: {tenant}\n    team: {team}"
    )
