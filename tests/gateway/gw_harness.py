"""A gateway on real loopback HTTP in front of the scripted model server, for the tests.

The gateway is served by its own server (`gateway_server`), as `orchestrator gateway`
serves it; `asgi=True` serves it mounted in Starlette under uvicorn instead, as
`orchestrator api` does.

Two deployments on the scripted model server: `strong` (good, dear) and `fast` (cheaper, the
policy's usual winner). A rule sends requests carrying `x-task: hard` to `strong` only,
so a test can make the router choose `strong` at one request and `fast` at the next.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.routing import Mount

from orchestrator.gateway import Gateway, GatewayKeys, GatewaySettings, gateway_app
from orchestrator.gateway.server import GatewayServer, gateway_server
from orchestrator.providers.registry import ModelRegistry
from orchestrator.scripted_model import LoopbackServer, ReplayScript, ScriptedModelServer
from orchestrator.store import Store
from orchestrator.types import JsonObject

TOKEN = "sk-gw-test-token"
LIMITED = "sk-gw-limited"
NARROW = "sk-gw-narrow"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def registry_for(base_url: str) -> ModelRegistry:
    return ModelRegistry.model_validate(registry_raw(base_url))


def registry_raw(base_url: str) -> JsonObject:
    """The models file as YAML would hold it."""
    return {
        "providers": {"replay": {"kind": "openai", "base_url": base_url, "timeout_seconds": 5}},
        "models": {
            "strong": {
                "provider": "replay",
                "model": "replay-strong",
                "input_price_per_mtok": 3.0,
                "output_price_per_mtok": 15.0,
                "quality": {"default": 0.9},
                "latency_ms": 2000,
            },
            "fast": {
                "provider": "replay",
                "model": "replay-fast",
                "input_price_per_mtok": 0.15,
                "output_price_per_mtok": 0.6,
                "quality": {"default": 0.6},
                "latency_ms": 600,
            },
        },
        "aliases": {
            "smart": {"deployments": ["strong", "fast"]},
            "cheap": {"deployments": ["fast"]},
        },
        "default_model": "fast",
        "routing": {
            "default_policy": "balanced",
            "policies": {
                "balanced": {
                    # Latency left out: live measurements on loopback would decide otherwise.
                    "weights": {"quality": 0.6, "cost": 0.3, "latency": 0.0},
                    "rules": [
                        {
                            "name": "hard-goes-strong",
                            "when": '"x-task" in headers && headers["x-task"] == "hard"',
                            "only": ["strong"],
                        }
                    ],
                }
            },
        },
    }


def keys(**limited: object) -> GatewayKeys:
    return GatewayKeys.model_validate(keys_raw(**limited))


def keys_raw(**limited: object) -> JsonObject:
    """The keys file as YAML would hold it."""
    return {
        "keys": [
            {"id": "main", "token_sha256": sha(TOKEN), "tenant": "acme", "team": "support"},
            {
                "id": "limited",
                "token_sha256": sha(LIMITED),
                "tenant": "acme",
                "team": "ops",
                **limited,
            },
            {
                "id": "narrow",
                "token_sha256": sha(NARROW),
                "tenant": "beta",
                "models": ["cheap"],
            },
        ]
    }


@dataclass
class Served:
    """A running gateway, its scripted model server and its store."""

    gateway: Gateway
    replay: ScriptedModelServer
    server: GatewayServer | LoopbackServer
    store: Store

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"


@contextlib.asynccontextmanager
async def serve_gateway(
    script: ReplayScript | Path,
    store_url: str,
    *,
    settings: GatewaySettings | None = None,
    limited: JsonObject | None = None,
    replay: ScriptedModelServer | None = None,
    registry: Callable[[str], ModelRegistry] = registry_for,
    asgi: bool = False,
) -> AsyncIterator[Served]:
    """Scripted model server, store, gateway and its HTTP server; all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        if replay is None:
            replay = await stack.enter_async_context(ScriptedModelServer(script))
        store = await stack.enter_async_context(await Store.open(store_url))
        gateway = Gateway(
            registry(replay.base_url),
            keys(**(limited or {})),
            store,
            settings or GatewaySettings(retry_backoff_seconds=0.0),
        )
        stack.push_async_callback(gateway.aclose)
        server: GatewayServer | LoopbackServer
        if asgi:
            app = Starlette(routes=[Mount("/v1", app=gateway_app(gateway))])
            server = await stack.enter_async_context(LoopbackServer(app))
        else:
            server = await stack.enter_async_context(gateway_server(gateway))
        yield Served(gateway=gateway, replay=replay, server=server, store=store)


@contextlib.asynccontextmanager
async def one_deployment(
    upstream: Starlette, store: Store, kind: str, name: str, model: str
) -> AsyncIterator[AsyncOpenAI]:
    """A gateway whose only deployment is `upstream` (a fake endpoint of API `kind`),
    and an `openai` client of it."""
    async with LoopbackServer(upstream) as fake:
        registry = ModelRegistry.model_validate(
            {
                "providers": {"up": {"kind": kind, "base_url": f"{fake.url}/v1"}},
                "models": {name: {"provider": "up", "model": model}},
                "default_model": name,
            }
        )
        gateway = Gateway(registry, keys(), store)
        try:
            async with (
                gateway_server(gateway) as server,
                AsyncOpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0) as client,
            ):
                yield client
        finally:
            await gateway.aclose()
