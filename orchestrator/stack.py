"""The embedded stack: dev server, optional scripted model server, and a worker, in one process.

`orchestrator dev` and `orchestrator demo` both run on it. With `temporal_address` set the
stack connects there instead of starting a server, so the same commands work on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from orchestrator.client import connect
from orchestrator.devserver import DevServer, free_port, port_in_use
from orchestrator.exceptions import DevServerError
from orchestrator.observability import configure_tracing, serve_http
from orchestrator.runtime import Runtime
from orchestrator.scripted_model import ScriptedModelServer
from orchestrator.settings import Settings
from orchestrator.worker import run_worker

__all__ = ["Stack", "embedded_stack"]


@dataclass
class Stack:
    """What is running, and where."""

    settings: Settings
    client: Client
    runtime: Runtime
    temporal_address: str
    ui_url: str | None
    scripted_url: str | None
    dev_server: DevServer | None
    metrics_url: str | None = None
    """The worker's `/metrics` page root, when a worker runs here and serves one."""


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, *, model_script: Path | None = None, worker: bool = True
) -> AsyncIterator[Stack]:
    """Start what the settings call for; stop it all on exit, in reverse order.

    Args:
        settings: Runtime settings.
        model_script: Serve this model script as the model endpoint (sets
            `ORCHESTRATOR_REPLAY_URL` for the models file).
        worker: Run a worker in this process.
    """
    async with contextlib.AsyncExitStack() as stack:
        scripted_url = None
        if model_script is not None:
            replay = await stack.enter_async_context(ScriptedModelServer(model_script))
            scripted_url = replay.base_url
            os.environ["ORCHESTRATOR_REPLAY_URL"] = scripted_url
        server = None
        address = settings.temporal_address
        ui_url = None
        if address is None:
            port = _dev_port(settings, settings.dev_server_port, "ORCHESTRATOR_DEV_SERVER_PORT")
            ui_port = _dev_port(
                settings, settings.dev_server_ui_port, "ORCHESTRATOR_DEV_SERVER_UI_PORT"
            )
            state = settings.resolved_state_dir
            server = DevServer(
                db_file=state / "temporal.db",
                port=port,
                ui_port=ui_port,
                ip=settings.dev_server_ip,
                namespace=settings.temporal_namespace,
            )
            await server.start()
            stack.push_async_callback(server.stop)
            address, ui_url = server.address, server.ui_url
        if worker:
            # Before the client and the worker: they add the tracing interceptor only if on.
            configure_tracing("orchestrator-worker")
        client = await connect(settings, address=address)
        runtime = await Runtime.open(settings)
        stack.push_async_callback(runtime.close)
        metrics_url = None
        if worker:
            metrics_url = await stack.enter_async_context(
                serve_http(runtime.store, host=settings.metrics_host, port=settings.metrics_port)
            )
            stop = asyncio.Event()
            task = asyncio.create_task(run_worker(client, runtime, stop))

            async def stop_worker() -> None:
                stop.set()
                await task

            stack.push_async_callback(stop_worker)
        yield Stack(
            settings=settings,
            client=client,
            runtime=runtime,
            temporal_address=address,
            ui_url=ui_url,
            scripted_url=scripted_url,
            dev_server=server,
            metrics_url=metrics_url,
        )


def _dev_port(settings: Settings, port: int, variable: str) -> int:
    """The configured port of the embedded server, or a free one when it is 0.

    A busy port is refused, never swapped for another: `run`, `approvals` and the rest dial
    the configured port, so a server that moved would leave them talking to whatever holds
    it (on a shared machine, someone else's server).

    Raises:
        DevServerError: something already listens on the port.
    """
    ip = settings.dev_server_ip
    if port == 0:
        return free_port(ip)
    if port_in_use(ip, port):
        use_it = (
            f", connect to it with ORCHESTRATOR_TEMPORAL_ADDRESS={ip}:{port}"
            if variable == "ORCHESTRATOR_DEV_SERVER_PORT"
            else ""
        )
        raise DevServerError(
            f"{ip}:{port} ({variable}) is already in use, by another `orchestrator dev` or"
            f" Temporal server? Stop it{use_it}, or set {variable} to a free port"
            " (in .env, so every orchestrator command uses it)"
        )
    return port
