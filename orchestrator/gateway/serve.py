"""The gateway of a project, put together from its settings, for `gateway` and `api`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.routing import Mount

from orchestrator.exceptions import ConfigError
from orchestrator.gateway.app import gateway_app
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.keys import GatewayKeys
from orchestrator.gateway.service import Gateway
from orchestrator.providers.keys import warn_missing_keys
from orchestrator.providers.registry import load_model_registry
from orchestrator.settings import Settings
from orchestrator.store.store import Store

__all__ = ["project_gateway", "v1_mount"]


@contextlib.asynccontextmanager
async def project_gateway(
    settings: Settings, store: Store, gateway_settings: GatewaySettings | None = None
) -> AsyncIterator[Gateway]:
    """The project's gateway over its models file and keys file; closed on exit.

    Raises:
        ConfigError: the keys file or the models file is missing or malformed.
    """
    config = gateway_settings or GatewaySettings()
    path = config.resolved_keys_file(settings.project_dir)
    if not path.exists():
        raise ConfigError(
            f"{path}: gateway keys file not found; create one from gateway_keys.example.yaml"
            " (`orchestrator gateway new-key ID` prints an entry)"
        )
    models = load_model_registry(settings.resolved_models_file)
    warn_missing_keys(models, settings.resolved_models_file, "gateway")
    gateway = Gateway(models, GatewayKeys.load(path), store, config)
    try:
        yield gateway
    finally:
        await gateway.aclose()


@contextlib.asynccontextmanager
async def v1_mount(settings: Settings, store: Store) -> AsyncIterator[list[Mount]]:
    """`/v1` for the API process when the project has a keys file; nothing otherwise."""
    config = GatewaySettings()
    if not config.resolved_keys_file(settings.project_dir).exists():
        yield []
        return
    async with project_gateway(settings, store, config) as gateway:
        yield [Mount("/v1", app=gateway_app(gateway))]
