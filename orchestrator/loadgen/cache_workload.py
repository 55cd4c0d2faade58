"""A labelled workload for the response cache: repeats, paraphrases and near-misses.

Each question carries the topic whose answer is right for it. Paraphrases share their
topic with a first question; near-misses look like one (another order number, a negation,
another country) but have a topic of their own, so a cached answer served to them is a
false hit. The questions go through a real gateway on loopback with the official `openai`
SDK, to the scripted model server (whose answers name the topic and whose `/v1/embeddings` gives
deterministic vectors). Shared by `bench/cache.py` and `tests/cache/test_cache_workload.py`.

Test and benchmark machinery, not part of the runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from openai import AsyncOpenAI
from starlette.applications import Starlette
from starlette.routing import Mount

from orchestrator.gateway import Gateway, GatewayKeys, GatewaySettings, gateway_app
from orchestrator.providers.registry import ModelRegistry
from orchestrator.scripted_model import LoopbackServer, ReplayScript, ScriptedModelServer
from orchestrator.store import Store
from orchestrator.store.records import EventKind
from orchestrator.types import JsonObject

__all__ = [
    "ACME",
    "BETA",
    "QUESTIONS",
    "SYSTEM",
    "CacheGateway",
    "LabelledQuestion",
    "WorkloadReport",
    "cache_gateway",
    "run_workload",
]

ACME = "sk-cache-acme"
BETA = "sk-cache-beta"
SYSTEM = "You are the support assistant of an online shop. Answer briefly."


@dataclass(frozen=True)
class LabelledQuestion:
    """A question and the topic whose answer is right for it."""

    text: str
    topic: str
    kind: str
    """`first`, `repeat`, `paraphrase` or `near_miss` (informational: hits are judged by topic)."""


def _q(topic: str, kind: str, *texts: str) -> list[LabelledQuestion]:
    return [LabelledQuestion(text=t, topic=topic, kind=kind) for t in texts]


QUESTIONS: list[LabelledQuestion] = [
    *_q("reset-password", "first", "How do I reset my password?"),
    *_q("reset-password", "paraphrase", "how can I reset my password", "Reset my password: how?"),
    *_q("change-password", "near_miss", "How do I change my password?"),
    *_q("reset-pin", "near_miss", "How do I reset my PIN?"),
    *_q("refund-100", "first", "What is the refund policy for orders over $100?"),
    *_q("refund-100", "paraphrase", "Refund policy for orders over $100?"),
    *_q("refund-500", "near_miss", "What is the refund policy for orders over $500?"),
    *_q("return-items", "first", "Which items can I return?"),
    *_q("return-items", "paraphrase", "Which items can I return, please?"),
    *_q("no-return-items", "near_miss", "Which items can I not return?"),
    *_q("order-7", "first", "Where is order 7?"),
    *_q("order-7", "paraphrase", "where is my order 7"),
    *_q("order-8", "near_miss", "Where is order 8?"),
    *_q("ship-canada", "first", "Do you ship to Canada?"),
    *_q("ship-canada", "paraphrase", "Do you ship to canada at all?"),
    *_q("ship-mexico", "near_miss", "Do you ship to Mexico?"),
    *_q("hours-sunday", "first", "What are your opening hours on Sunday?"),
    *_q("hours-sunday", "paraphrase", "Opening hours on Sunday?", "Sunday opening hours"),
    *_q("hours-saturday", "near_miss", "What are your opening hours on Saturday?"),
    *_q("gift-cards", "first", "Can I pay with gift cards?"),
    *_q("gift-cards", "paraphrase", "Can I pay with a gift card?"),
    *_q("gift-cards-expire", "near_miss", "Do gift cards expire?"),
    *_q("warranty-2y", "first", "Is the warranty 2 years on laptops?"),
    *_q("warranty-3y", "near_miss", "Is the warranty 3 years on laptops?"),
    *_q("warranty-phones", "near_miss", "Is the warranty 2 years on phones?"),
]
"""Every question once; `run_workload` asks each of them `rounds` times, shuffled."""


def topic_marker(topic: str) -> str:
    """How the scripted answer names its topic, so a served answer can be judged."""
    return f"[{topic}]"


def script() -> ReplayScript:
    """One scripted conversation per question, longest first so none captures another."""
    ordered = sorted(QUESTIONS, key=lambda q: -len(q.text))
    conversations: list[JsonObject] = []
    for q in ordered:
        name = "q-" + hashlib.sha256(q.text.encode()).hexdigest()[:12]
        conversations.append(
            {
                "name": name,
                "match": {"model": "replay-answerer", "contains": q.text},
                "turns": [{"content": f"{topic_marker(q.topic)} The answer about {q.topic}."}],
                "after_last": "repeat_last",
            }
        )
    return ReplayScript.model_validate({"conversations": conversations})


def registry(base_url: str, *, similarity: float = 0.9, cached: bool = True) -> ModelRegistry:
    """An answering deployment behind the alias `support`, cached; an embeddings one."""
    return ModelRegistry.model_validate(
        {
            "providers": {"replay": {"kind": "openai", "base_url": base_url}},
            "models": {
                "answerer": {
                    "provider": "replay",
                    "model": "replay-answerer",
                    "input_price_per_mtok": 3.0,
                    "output_price_per_mtok": 15.0,
                },
                "embedder": {
                    "provider": "replay",
                    "model": "replay-embed",
                    "input_price_per_mtok": 0.02,
                },
            },
            "aliases": {"support": {"deployments": ["answerer"]}},
            "default_model": "support",
            "cache": {
                "models": ["support"] if cached else [],
                "embeddings": "embedder",
                "similarity": similarity,
                "ttl_seconds": 600,
                "read_only_tools": ["get_order"],
            },
        }
    )


def keys() -> GatewayKeys:
    """Two tenants, one key each."""
    return GatewayKeys.model_validate(
        {
            "keys": [
                {"id": "acme", "token_sha256": _sha(ACME), "tenant": "acme"},
                {"id": "beta", "token_sha256": _sha(BETA), "tenant": "beta"},
            ]
        }
    )


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class CacheGateway:
    """A running gateway with the cache on, its scripted model server and its store."""

    gateway: Gateway
    replay: ScriptedModelServer
    store: Store
    base_url: str


@contextlib.asynccontextmanager
async def cache_gateway(
    store_url: str,
    *,
    model_script: ReplayScript | None = None,
    similarity: float = 0.9,
    cached: bool = True,
) -> AsyncIterator[CacheGateway]:
    """Scripted model server, store and gateway (on loopback HTTP); all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        replay = await stack.enter_async_context(ScriptedModelServer(model_script or script()))
        store = await stack.enter_async_context(await Store.open(store_url))
        gateway = Gateway(
            registry(replay.base_url, similarity=similarity, cached=cached),
            keys(),
            store,
            GatewaySettings(retry_backoff_seconds=0.0),
        )
        stack.push_async_callback(gateway.aclose)
        app = Starlette(routes=[Mount("/v1", app=gateway_app(gateway))])
        server = await stack.enter_async_context(LoopbackServer(app))
        yield CacheGateway(gateway, replay, store, f"{server.url}/v1")


@dataclass
class WorkloadReport:
    """What the cache did on the labelled workload."""

    requests: int = 0
    eligible: int = 0
    """Requests whose topic had been answered before (a hit would be right)."""
    exact_hits: int = 0
    semantic_hits: int = 0
    false_hits: int = 0
    """Hits whose answer was for another topic: must be 0."""
    near_miss_false_hits: int = 0
    saved_usd: float = 0.0
    spent_usd: float = 0.0
    """Cost of the answers actually made, embeddings included."""
    embedding_usd: float = 0.0
    seconds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def hits(self) -> int:
        """Exact plus semantic hits."""
        return self.exact_hits + self.semantic_hits

    @property
    def hit_rate(self) -> float:
        """Hits over all requests."""
        return self.hits / self.requests if self.requests else 0.0

    @property
    def eligible_hit_rate(self) -> float:
        """Right hits over the requests a right hit was possible for."""
        return (self.hits - self.false_hits) / self.eligible if self.eligible else 0.0


async def run_workload(
    served: CacheGateway, *, rounds: int = 2, seed: int = 7, token: str = ACME
) -> WorkloadReport:
    """Ask every question `rounds` times, shuffled (firsts before their paraphrases)."""
    rng = random.Random(seed)
    asked = [q for _ in range(rounds) for q in QUESTIONS]
    rng.shuffle(asked)
    report = WorkloadReport()
    answered_topics: set[str] = set()
    async with AsyncOpenAI(base_url=served.base_url, api_key=token, max_retries=0) as client:
        for q in asked:
            began = time.perf_counter()
            raw = await client.chat.completions.with_raw_response.create(
                model="support",
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": q.text},
                ],
            )
            seconds = time.perf_counter() - began
            kind = raw.headers.get("x-orchestrator-cache")
            report.seconds.setdefault(kind or "miss", []).append(seconds)
            content = raw.parse().choices[0].message.content or ""
            report.requests += 1
            if q.topic in answered_topics:
                report.eligible += 1
            if kind == "exact":
                report.exact_hits += 1
            elif kind == "semantic":
                report.semantic_hits += 1
            if kind is not None and topic_marker(q.topic) not in content:
                report.false_hits += 1
                report.near_miss_false_hits += q.kind == "near_miss"
            answered_topics.add(q.topic)
    events = await served.store.reports.events([EventKind.MODEL_CALL])
    for event in events:
        saved = event.payload.get("saved_usd")
        if isinstance(saved, int | float):
            report.saved_usd += float(saved)
        report.spent_usd += event.cost_usd or 0.0
    report.embedding_usd = served.gateway.cache.cache.embedding_usd
    report.spent_usd += report.embedding_usd
    return report
