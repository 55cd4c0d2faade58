"""The cache of a models file: its names checked, questions embedded through the registry."""

from __future__ import annotations

from typing import Protocol

from pydantic import JsonValue

from orchestrator.cache.service import Embedder, ResponseCache
from orchestrator.exceptions import ConfigError, ProviderError
from orchestrator.providers.registry import ModelRegistry
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["Embeddings", "cache_for", "embedder"]


class Embeddings(Protocol):
    """What sends an embeddings body to a deployment.

    `orchestrator.gateway.upstream.Upstreams` is one; a protocol here keeps the gateway
    package out of the cache's imports (the gateway imports the cache).
    """

    async def embed(self, deployment: str, body: JsonObject) -> JsonValue:
        """The endpoint's answer.

        Raises:
            ProviderError: the endpoint failed.
        """
        ...


def embedder(registry: ModelRegistry, upstreams: Embeddings, name: str) -> Embedder:
    """Embeds one question on the first deployment of `name`, priced by its usage.

    Raises:
        ConfigError: `name` is not in the models file.
    """
    try:
        deployment = registry.deployments_for(name)[0]
    except ConfigError as exc:
        raise ConfigError(f"cache.embeddings: {exc}") from None

    entry = registry.models[deployment]

    async def embed(text: str) -> tuple[list[float], float]:
        body: JsonValue = await upstreams.embed(deployment, {"input": [text]})
        data = body.get("data") if isinstance(body, dict) else None
        first = data[0] if isinstance(data, list) and data else None
        vector = first.get("embedding") if isinstance(first, dict) else None
        if not isinstance(vector, list):
            raise ProviderError(f"{deployment}: embeddings answer has no data[0].embedding")
        usage = body.get("usage") if isinstance(body, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        cost = entry.cost(tokens if isinstance(tokens, int) else 0, 0)
        return [float(x) for x in vector if isinstance(x, int | float)], cost

    return embed


def cache_for(registry: ModelRegistry, store: Store, upstreams: Embeddings) -> ResponseCache:
    """The response cache the models file's `cache:` section describes.

    The section was checked when the file was loaded: its names exist, and its embeddings
    deployment speaks an API that has embeddings.
    """
    config = registry.cache
    embed = embedder(registry, upstreams, config.embeddings) if config.embeddings else None
    return ResponseCache(config, store.cache, embed)
