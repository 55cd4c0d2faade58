"""The cache in plan sessions: a lookup inside the model-call activity.

A hit is the activity's result, recorded in the workflow history like any answer, so a
replay reads the same answer whatever the cache holds by then. A step takes part only when
the workflow sent `cache_tenant` (the session's tenant: a step with `cache: false`, and a
fan-out's calls, send none), for a model name opted in by the models file (the name
the step asked for, else the deployment that serves it); tools whose
skills are `read_only` by contract are reads, any other tool result is a write.
"""

from __future__ import annotations

import httpx

from orchestrator.cache.embed import cache_for
from orchestrator.cache.service import CacheHit, Lookup
from orchestrator.gateway.upstream import Upstreams
from orchestrator.providers.messages import ModelRequest, ModelResponse, Usage
from orchestrator.providers.registry import ModelRegistry
from orchestrator.session.types import ModelCallInput
from orchestrator.store.store import Store

__all__ = ["SessionCache"]


class SessionCache:
    """The response cache as the model-call activity uses it."""

    def __init__(self, registry: ModelRegistry, store: Store) -> None:
        self._client = httpx.AsyncClient()
        self.cache = cache_for(registry, store, Upstreams(registry, self._client))

    async def lookup(self, call: ModelCallInput, request: ModelRequest) -> Lookup:
        """The cached answer to a step's model call, if the step and model allow one."""
        return await self.cache.lookup(
            call.cache_tenant or call.tenant,
            call.cache_name or call.model,
            request,
            uncacheable=call.cache_tenant is None,
            read_only=frozenset(call.read_only_tools),
        )

    async def save(
        self, found: Lookup, response: ModelResponse, deployment: str, cost_usd: float
    ) -> None:
        """Remember a whole answer after a miss."""
        if found.key is not None and found.hit is None:
            await self.cache.save(found, response, deployment, cost_usd)

    @staticmethod
    def answer(hit: CacheHit) -> ModelResponse:
        """The remembered answer, with no usage: no tokens were spent on it."""
        return hit.response.model_copy(update={"usage": Usage()})

    async def aclose(self) -> None:
        """Close the embeddings client."""
        await self._client.aclose()
