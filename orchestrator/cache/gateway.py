"""The cache on the gateway's path: one lookup before the upstream call, one save after.

The gateway's requests are keyed by the key's tenant and the model name the client sent.
A client opts a request out with `Cache-Control: no-store` (or `no-cache`) or
`x-orchestrator-cache: off`. A hit is answered with zero usage (no tokens were spent),
settles the request's budget hold at nothing, and is audited as a `model_call` whose
payload says `cache` (exact or semantic), the similarity and the saved cost; a streaming
client is sent the remembered answer as a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from orchestrator.cache.embed import cache_for
from orchestrator.cache.keys import Skip
from orchestrator.cache.service import CacheHit, Lookup
from orchestrator.gateway import audit
from orchestrator.gateway.metrics import GATEWAY_REQUESTS, child
from orchestrator.gateway.recovery import Answered
from orchestrator.gateway.upstream import Upstreams
from orchestrator.providers.messages import ModelResponse, Usage
from orchestrator.providers.registry import ModelRegistry
from orchestrator.providers.streaming import DeltaSink, answer_deltas
from orchestrator.store.group_commit import Write
from orchestrator.store.store import Store

if TYPE_CHECKING:
    from orchestrator.gateway.service import Admitted

__all__ = ["GatewayCache", "opted_out"]

_NO_STORE = ("no-store", "no-cache")


def opted_out(headers: Mapping[str, str]) -> bool:
    """Whether the client asked for this request not to use the cache."""
    control = headers.get("cache-control", "").lower()
    flag = headers.get("x-orchestrator-cache", "").strip().lower()
    return any(word in control for word in _NO_STORE) or flag in ("off", "false", "0", "no")


class GatewayCache:
    """The response cache as the gateway uses it.

    Raises:
        ConfigError: `cache:` names a model or embeddings deployment the file lacks.
    """

    def __init__(self, registry: ModelRegistry, store: Store, upstreams: Upstreams) -> None:
        self.cache = cache_for(registry, store, upstreams)

    async def lookup(self, a: Admitted) -> Lookup:
        """The cached answer to an admitted request, if it may have one.

        A model name the cache does not serve is answered at once, without the request's
        conversation (a forwarded chat-completions body never has it built).
        """
        if a.call.requested not in self.cache.config.models:
            return Lookup(skip=Skip.OFF)
        return await self.cache.lookup(
            a.key.tenant, a.call.requested, a.call.request, uncacheable=opted_out(a.headers)
        )

    async def serve(
        self, a: Admitted, hit: CacheHit, on_delta: Callable[[str], DeltaSink] | None
    ) -> tuple[Answered, list[Write]]:
        """The answer from the cache, relayed to a streaming client, and its audit writes."""
        response = hit.response.model_copy(update={"usage": Usage()})
        if on_delta is not None:
            sink = on_delta(hit.deployment)
            for delta in answer_deltas(response):
                await sink(delta)
        now = datetime.now(UTC)
        writes: list[Write] = [
            audit.session_start(a.session.session_id, a.key, a.api, now),
            audit.call(
                a.session.session_id,
                a.request_id,
                now,
                deployment=hit.deployment,
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                duration_ms=0.0,
                payload={
                    "key": a.key.id,
                    "api": a.api,
                    "boundary": a.boundary.value,
                    "outcome": "cache_hit",
                    "requested": a.call.requested,
                    "stream": a.call.stream,
                    "cache": hit.kind,
                    "similarity": hit.similarity,
                    "saved_usd": hit.saved_usd,
                },
            ),
        ]
        child(GATEWAY_REQUESTS, a.api, a.boundary.value, "cache_hit").inc()
        return Answered(response=response, deployment=hit.deployment), writes

    async def save(
        self,
        found: Lookup,
        answered: Answered,
        registry: ModelRegistry,
        writing: Callable[[], AbstractAsyncContextManager[object]],
    ) -> None:
        """Remember a whole answer after a miss, with what it cost (what a hit saves)."""
        if found.key is None or found.hit is not None:
            return
        if not isinstance(answered.response, ModelResponse):
            return
        cost = registry.models[answered.deployment].usage_cost(answered.response.usage)
        async with writing():
            await self.cache.save(found, answered.response, answered.deployment, cost)
