"""Connect to Temporal as the settings say: embedded dev server, cluster, or cloud."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from orchestrator.exceptions import DevServerError
from orchestrator.observability.tracing import tracing_interceptors
from orchestrator.settings import Settings

__all__ = ["connect", "lazy_connect"]


async def connect(settings: Settings, *, address: str | None = None) -> Client:
    """A client with the runtime's data converter, using the settings' address and TLS.

    The client carries no plugin: workers add `OrchestratorPlugin(runtime)` themselves, so
    one client can serve a worker and plain callers alike. It does carry the process's
    tracing interceptor, so a session's trace starts where it is started.

    Args:
        settings: Where Temporal is and how to reach it.
        address: Overrides the settings' address (used for the embedded server).
    """
    tls: bool | TLSConfig = False
    if settings.temporal_tls or settings.temporal_tls_client_cert:
        tls = TLSConfig(
            server_root_ca_cert=_read(settings.temporal_tls_server_ca),
            client_cert=_read(settings.temporal_tls_client_cert),
            client_private_key=_read(settings.temporal_tls_client_key),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    target = address or settings.temporal_address or settings.dev_server_address
    try:
        return await _connect(settings, target, tls, api_key)
    except RuntimeError as exc:  # the SDK's "Failed client connect", with a long chain
        raise DevServerError(
            f"cannot reach Temporal at {target}: start it with `orchestrator dev`, or set"
            " ORCHESTRATOR_TEMPORAL_ADDRESS to your server's host:port"
        ) from exc


async def _connect(
    settings: Settings, target: str, tls: bool | TLSConfig, api_key: str | None
) -> Client:
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        tls=tls,
        api_key=api_key,
        data_converter=pydantic_data_converter,
        interceptors=tracing_interceptors(),
    )


def lazy_connect(settings: Settings) -> Callable[[], Awaitable[Client]]:
    """A function giving one shared client, connected on its first call.

    For servers that must start while Temporal is still unreachable (the API process):
    only the requests that need Temporal wait for it.
    """
    connected: list[Client] = []

    async def client() -> Client:
        if not connected:
            connected.append(await connect(settings))
        return connected[0]

    return client


def _read(path: object) -> bytes | None:
    from pathlib import Path

    return Path(str(path)).read_bytes() if path else None
