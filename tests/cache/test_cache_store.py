"""The cache on a real store (SQLite and PostgreSQL): exact, semantic, TTL, tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.cache import CacheConfig
from orchestrator.cache.service import ResponseCache
from orchestrator.providers.messages import ChatMessage, ModelRequest, ModelResponse, Usage
from orchestrator.scripted_model._embeddings import embedding_of
from orchestrator.store import Store

CONFIG = CacheConfig(models=frozenset({"support"}), embeddings="embedder", ttl_seconds=60)


async def embed(text: str) -> tuple[list[float], float]:
    return embedding_of(text), 0.000001


def ask(text: str) -> ModelRequest:
    return ModelRequest(model="m", messages=[ChatMessage(role="user", content=text)])


def answer(text: str) -> ModelResponse:
    return ModelResponse(
        message=ChatMessage(role="assistant", content=text),
        usage=Usage(input_tokens=10, output_tokens=5),
        finish_reason="stop",
    )


async def test_exact_then_semantic_then_expiry_never_across_tenants(store: Store) -> None:
    now = [datetime(2026, 12, 6, tzinfo=UTC)]
    cache = ResponseCache(CONFIG, store.cache, embed, clock=lambda: now[0])
    first = await cache.lookup("acme", "support", ask("How do I reset my password?"))
    assert first.hit is None and first.embedding is not None
    assert await cache.save(first, answer("Use the link."), "answerer", 0.25)

    exact = await cache.lookup("acme", "support", ask("How do I reset my password?"))
    assert exact.hit is not None and exact.hit.kind == "exact" and exact.hit.saved_usd == 0.25
    semantic = await cache.lookup("acme", "support", ask("how can I reset my password"))
    assert semantic.hit is not None and semantic.hit.kind == "semantic"
    assert semantic.hit.response.message.content == "Use the link."

    other_tenant = await cache.lookup("beta", "support", ask("How do I reset my password?"))
    assert other_tenant.hit is None
    near_miss = await cache.lookup("acme", "support", ask("How do I change my password?"))
    assert near_miss.hit is None

    now[0] += timedelta(seconds=61)
    expired = await cache.lookup("acme", "support", ask("How do I reset my password?"))
    assert expired.hit is None


async def test_truncated_answers_and_hits_are_not_stored(store: Store) -> None:
    cache = ResponseCache(CONFIG, store.cache, embed)
    found = await cache.lookup("acme", "support", ask("Tell me everything"))
    cut = answer("Part of").model_copy(update={"finish_reason": "length"})
    assert not await cache.save(found, cut, "answerer", 0.1)
    assert (await cache.lookup("acme", "support", ask("Tell me everything"))).hit is None
