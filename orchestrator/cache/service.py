"""The response cache: exact, then semantic, lookups and stores, with their safety rules.

`lookup` decides whether the request may use the cache at all (`keys.skip_reason`), then
tries the exact key, then (for a user question, when an embeddings deployment is set) the
closest question of the same tenant, name and frame whose guard words match. `save`
stores a whole answer after a miss; nothing else is stored: not a skipped request, not a
truncated answer, and never a stream that was cut (its call raised before `save`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from orchestrator.cache.config import CacheConfig
from orchestrator.cache.keys import CacheKey, Skip, cosine, guard_words, key_of, skip_reason
from orchestrator.cache.metrics import CACHE_EMBEDDING_USD, CACHE_LOOKUPS, CACHE_SAVED_USD
from orchestrator.exceptions import ProviderError
from orchestrator.logs import get_logger
from orchestrator.providers.messages import ModelRequest, ModelResponse
from orchestrator.store.response_cache import CacheEntry, CacheLedger

__all__ = ["CacheHit", "Embedder", "Lookup", "ResponseCache"]

log = get_logger(__name__)

Embedder = Callable[[str], Awaitable[tuple[list[float], float]]]
"""Embeds one question (through the registry's `/v1/embeddings` deployment): the vector
and what the call cost in USD."""


@dataclass(frozen=True)
class CacheHit:
    """An answer served from the cache, and what it saved."""

    response: ModelResponse
    deployment: str
    """The deployment that made the answer originally."""
    kind: Literal["exact", "semantic"]
    similarity: float
    saved_usd: float
    entry: str


@dataclass(frozen=True)
class Lookup:
    """What a lookup found, or why it did not look, and what `save` needs after a miss."""

    skip: Skip | None
    key: CacheKey | None = None
    hit: CacheHit | None = None
    embedding: list[float] | None = None

    @property
    def result(self) -> str:
        """The metric label: `exact`, `semantic`, `miss`, or the reason it was skipped."""
        if self.skip is not None:
            return self.skip.value
        return self.hit.kind if self.hit is not None else "miss"


class ResponseCache:
    """Answers remembered in the store, looked up before a model call and saved after it.

    Args:
        config: The models file's `cache:` section.
        ledger: The store's cache rows (`Store.cache`).
        embed: Embeds a question; None: exact matches only.
        clock: Now, in UTC (tests move it to expire entries).
    """

    def __init__(
        self,
        config: CacheConfig,
        ledger: CacheLedger,
        embed: Embedder | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.embed = embed if config.embeddings is not None else None
        self.clock = clock
        self.embedding_usd = 0.0
        """What this process spent embedding questions: the price of semantic lookups."""

    async def lookup(
        self,
        tenant: str,
        name: str,
        request: ModelRequest,
        *,
        uncacheable: bool = False,
        read_only: Set[str] = frozenset(),
    ) -> Lookup:
        """Find a remembered answer to `request`, or say why none may be used."""
        skip = skip_reason(request, name, self.config, uncacheable=uncacheable, read_only=read_only)
        if skip is not None:
            found = Lookup(skip=skip)
        else:
            found = await self._find(key_of(tenant, name, request))
        if found.skip is not Skip.OFF:
            CACHE_LOOKUPS.labels(name, found.result).inc()
        if found.hit is not None:
            CACHE_SAVED_USD.labels(name).inc(found.hit.saved_usd)
        return found

    async def _find(self, key: CacheKey) -> Lookup:
        now = self.clock()
        exact = await self.ledger.get(key.entry, now)
        if exact is not None:
            return Lookup(skip=None, key=key, hit=_hit(exact, "exact", 1.0))
        if not key.question or self.embed is None:
            return Lookup(skip=None, key=key)
        try:
            vector, cost = await self.embed(key.question)
        except ProviderError as exc:
            log.warning("cache: embedding failed; exact matches only", error=str(exc)[:200])
            return Lookup(skip=None, key=key)
        self.embedding_usd += cost
        CACHE_EMBEDDING_USD.labels(key.name).inc(cost)
        best, score = None, 0.0
        guard = guard_words(key.question)
        for entry in await self.ledger.candidates(
            key.tenant, key.name, key.frame, now, self.config.max_candidates
        ):
            if entry.embedding is None or guard_words(entry.question) != guard:
                continue
            similarity = cosine(vector, entry.embedding)
            if similarity > score:
                best, score = entry, similarity
        if best is not None and score >= self.config.similarity:
            return Lookup(skip=None, key=key, hit=_hit(best, "semantic", score), embedding=vector)
        return Lookup(skip=None, key=key, embedding=vector)

    async def save(
        self, found: Lookup, response: ModelResponse, deployment: str, cost_usd: float
    ) -> bool:
        """Remember a whole answer after a miss; False when it may not be stored."""
        if found.skip is not None or found.hit is not None or found.key is None:
            return False
        if response.truncated or not (response.message.content or response.message.tool_calls):
            return False
        now = self.clock()
        key = found.key
        await self.ledger.put(
            CacheEntry(
                entry=key.entry,
                tenant=key.tenant,
                name=key.name,
                frame=key.frame,
                question=key.question,
                embedding=found.embedding,
                response=response.model_dump(mode="json"),
                deployment=deployment,
                cost_usd=cost_usd,
                created_at=now,
                expires_at=now + timedelta(seconds=self.config.ttl_seconds),
            )
        )
        return True


def _hit(entry: CacheEntry, kind: Literal["exact", "semantic"], similarity: float) -> CacheHit:
    response = ModelResponse.model_validate(entry.response)
    return CacheHit(
        response=response,
        deployment=entry.deployment,
        kind=kind,
        similarity=round(similarity, 4),
        saved_usd=entry.cost_usd,
        entry=entry.entry,
    )
